"""HICRA and its baselines on TRL's GRPOTrainer, through one seam: `_generate_and_score_completions`.

Why that seam (method.md section 6): it is the last place where the generation batch is still in
sampling order, groups contiguous, with TRL's gathered, group-normalised per-sequence advantages.
`_prepare_inputs` shuffles its output rows right after, splits them into micro-batches and buffers
them for ``num_iterations`` reuses. So we call ``super()``, then, still in order:

1. decode the completions and build the planning mask with `PlanningTagger` over the decoded text
   (`hierarchy.tokens.planning_masks`, EOS excluded: it is never a planning token);
2. run TRL's own `_get_per_token_logps_and_entropies` once without gradient, on the same weights
   the loss will use (one generation per optimizer step by default), for per-token logprobs and
   entropies: the logged values, the entropy-topk selection and the heuristic planning source.
   With ``num_iterations == 1`` they equal the loss forward pass's values up to float noise; we
   chose this extra no-grad pass over capturing them inside `_compute_loss`, which would take
   overriding two more private methods and re-aligning shuffled rows;
3. turn the (B,) advantages into (B, T) per-token credit with `train.advantages` (TRL 1.16's
   `_compute_loss` takes (B, T) advantages as they are and unsqueezes only (B,));
4. record the step's rollout table and metrics (main process writes);
5. return a NEW dict with the new ``advantages`` (and, for entropy-topk, ``num_items_in_batch`` =
   the selected-token count, the DAPO loss normaliser): every value stays row-aligned, so TRL's
   shuffle keeps credit with its tokens; the buffered dict is never edited in place.

Methods: hicra (planning tokens from the lexicon, or the port's entropy heuristic), grpo (A on
every token), entropy-topk (80/20: A on the top-20% entropy tokens, 0 elsewhere, normalised over
the selected tokens), entropy-reg (A on every token plus TRL's own ``entropy_coef`` bonus).
The logged ``planning_mask`` is always the lexicon's (what `analyze` measures); with
``planning_source="heuristic"`` the scaled tokens are the heuristic's, visible in ``advantages``.
The heuristic assumes each process's generation batch holds whole groups, which is TRL's layout
when the per-process generation batch is a multiple of ``num_generations`` (our run setup).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from reasonlens import columns as C
from reasonlens.hierarchy.tokens import planning_masks
from reasonlens.records import step_file, write_parquet
from reasonlens.train.advantages import (entropy_topk_mask, heuristic_advantages, heuristic_selection_mask,
                                         hicra_advantages, per_token_advantages)
from reasonlens.train.recording import step_metrics


class HicraTrainer(GRPOTrainer):
    """GRPOTrainer whose per-token advantages come from `reasonlens.train.advantages`.

    Parameters
    ----------
    config : `TrainConfig` (method, alpha, planning source, quantiles, run folder).
    task_reward : the `TaskReward` among ``reward_funcs`` (its scores fill pred/correct).
    tagger : `PlanningTagger` that defines planning tokens.
    **kwargs : passed to `trl.GRPOTrainer` (model, reward_funcs, args, train_dataset, ...).
    """

    def __init__(self, *args, config, task_reward, tagger, **kwargs):
        super().__init__(*args, **kwargs)
        self.hicra_config = config
        self.task_reward = task_reward
        self.tagger = tagger

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        batch = self._decode(inputs, output)
        planning = self._planning_mask(batch, output["completion_ids"])  # (B, T) bool
        logprobs, entropies = self._score(output)  # (B, T), (B, T)
        advantages, num_items = self._credit(output, planning, entropies, batch)  # (B, T), ()
        if self.model.training:
            self._record(batch, output, planning, logprobs, entropies, advantages)
        return {**output, "advantages": advantages, "num_items_in_batch": num_items}

    def _decode(self, inputs: list[dict], output: dict) -> list[dict]:
        """Per row, in order: response ids without EOS, graded text, Score, whether it hit the budget."""
        rows = []
        lengths = output["completion_mask"].sum(dim=1).tolist()  # (B,)
        for example, ids, length in zip(inputs, output["completion_ids"].tolist(), lengths):
            ids = ids[:int(length)]
            ended = bool(ids) and ids[-1] in self.eos_token_ids
            text = self._tokenizer.decode(ids, skip_special_tokens=True)  # what the reward graded
            score = self.task_reward.score(text, example["prompt_id"])
            rows.append({"example": example, "token_ids": ids[:-1] if ended else ids, "text": text,
                         "score": score, "truncated": not ended})
        return rows

    def _planning_mask(self, batch: list[dict], completion_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) bool, True = planning token; EOS and padding are False."""
        masks = planning_masks([row["token_ids"] for row in batch], self._tokenizer, self.tagger)
        planning = torch.zeros(completion_ids.shape, dtype=torch.bool)  # (B, T)
        for i, mask in enumerate(masks):
            planning[i, :len(mask)] = torch.tensor(mask, dtype=torch.bool)
        return planning.to(completion_ids.device)

    @torch.no_grad()
    def _score(self, output: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token logprobs and entropies of the completions under the current weights: (B, T) each."""
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)  # (B, P+T)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)  # (B, P+T)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model, input_ids, attention, output["completion_ids"].size(1),
            batch_size=self.args.per_device_train_batch_size, compute_entropy=True)
        return logps.float(), entropies.float()

    def _credit(self, output: dict, planning: torch.Tensor, entropies: torch.Tensor,
                batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token advantages (B, T) for the configured method, and the loss's token count."""
        cfg = self.hicra_config
        adv = output["advantages"]  # (B,) TRL's group-normalised advantages
        valid = output["completion_mask"].bool()  # (B, T)
        num_items = output["num_items_in_batch"]
        if cfg.method == "hicra" and cfg.planning_source == "lexicon":
            return hicra_advantages(adv, planning, cfg.alpha), num_items
        if cfg.method == "hicra":
            correct = torch.tensor([row["score"].correct for row in batch], device=adv.device)  # (B,)
            chosen = heuristic_selection_mask(entropies, valid, correct, self.num_generations,
                                              cfg.heuristic_quantile)
            return heuristic_advantages(adv, chosen, cfg.alpha), num_items
        per_token = per_token_advantages(adv, valid)  # (B, T)
        if cfg.method == "entropy-topk":
            chosen = entropy_topk_mask(entropies, valid, cfg.entropy_quantile)  # (B, T)
            selected = self.accelerator.gather(chosen.sum()[None]).sum()
            return per_token * chosen, selected.to(num_items.dtype)
        return per_token, num_items  # grpo, entropy-reg (the bonus is TRL's entropy_coef)

    def _record(self, batch, output, planning, logprobs, entropies, advantages) -> None:
        """Write RUN/rollouts/step_N.parquet and push the step's metrics into TRL's logs."""
        step = self.state.global_step + 1  # the optimizer step these rollouts feed
        prompt_ids = output["prompt_ids"].tolist()
        prompt_mask = output["prompt_mask"].tolist()
        rows = []
        for i, row in enumerate(batch):
            n = len(row["token_ids"])
            example, score = row["example"], row["score"]
            rows.append({
                C.STEP: step, C.CHECKPOINT: "base" if step == 1 else f"step_{step - 1}",
                C.PROMPT_ID: example["prompt_id"], C.SAMPLE_ID: i % self.num_generations,
                C.PROMPT: example["question"],
                C.PROMPT_TOKEN_IDS: [t for t, m in zip(prompt_ids[i], prompt_mask[i]) if m],
                C.RESPONSE: row["text"], C.TOKEN_IDS: row["token_ids"], C.ANSWER: example["answer"],
                C.PRED: score.pred, C.REWARD: score.reward, C.CORRECT: score.correct, C.N_TOKENS: n,
                C.TRUNCATED: row["truncated"], C.LOGPROBS: logprobs[i, :n].cpu().numpy(),
                C.ENTROPIES: entropies[i, :n].cpu().numpy(), C.PLANNING_MASK: planning[i, :n].tolist(),
                C.ADVANTAGES: advantages[i, :n].cpu().numpy()})  # float32 arrays
        table = pd.DataFrame(gather_object(rows))
        if self.accelerator.is_main_process:
            write_parquet(step_file(self.hicra_config.out, step), table)
        for name, value in step_metrics(table, self.tagger, self.num_generations).items():
            self._metrics["train"][name].append(value)
