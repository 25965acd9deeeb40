"""HICRA and its baselines on TRL's GRPOTrainer, through one seam: `_generate_and_score_completions`.

Why that seam (method.md section 6): it is the last place where the generation batch is still in
sampling order, groups contiguous, with TRL's gathered, group-normalised per-sequence advantages.
`_prepare_inputs` shuffles its output rows right after, splits them into micro-batches and buffers
them for ``num_iterations`` reuses. So we call ``super()``, then, still in order:

1. build the step's rollout table: each completion's text and token offsets come from its ids
   (`models.offsets.token_offsets`; no decode call for byte-level BPE), EOS excluded; its grade is
   the one TRL's reward call just computed (`TaskReward.latest_`, in call order);
2. tag it once (`hierarchy.tag.tag_rollouts`): planning mask, grams and the other tag columns;
3. run TRL's own `_get_per_token_logps_and_entropies` once without gradient, on the same weights
   the loss will use (one generation per optimizer step by default), for per-token logprobs and
   entropies: the logged values, the entropy-topk selection and the heuristic planning source.
   With ``num_iterations == 1`` they equal the loss forward pass's values up to float noise; we
   chose this extra no-grad pass over capturing them inside `_compute_loss`, which would take
   overriding two more private methods and re-aligning shuffled rows;
4. turn the (B,) advantages into (B, T) per-token credit with `train.advantages` (TRL 1.16's
   `_compute_loss` takes (B, T) advantages as they are and unsqueezes only (B,)); the entropy-topk
   threshold is taken over the real tokens of every process's batch, gathered, as TRL does;
5. record the step's rollout table and `metrics.dynamics.step_metrics` (the same numbers `analyze`
   computes), the main process writing, and send them to the --report-to trackers (`recording.LiveDynamics`);
6. return a NEW dict with the new ``advantages`` (and, for entropy-topk, ``num_items_in_batch`` =
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
from reasonlens.hierarchy.tag import tag_rollouts
from reasonlens.metrics.dynamics import step_metrics
from reasonlens.models.offsets import token_offsets
from reasonlens.records import step_file, write_parquet
from reasonlens.train.advantages import (entropy_topk_mask, entropy_topk_threshold, heuristic_advantages,
                                         heuristic_selection_mask, hicra_advantages, per_token_advantages)


class HicraTrainer(GRPOTrainer):
    """GRPOTrainer whose per-token advantages come from `reasonlens.train.advantages`.

    Parameters
    ----------
    config : `TrainConfig` (method, alpha, planning source, quantiles, run folder).
    task_reward : the `TaskReward` among ``reward_funcs`` (its scores fill pred/correct).
    lexicon : the `Lexicon` whose strategic grams define planning tokens.
    **kwargs : passed to `trl.GRPOTrainer` (model, reward_funcs, args, train_dataset, ...).
    """

    def __init__(self, *args, config, task_reward, lexicon, live=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hicra_config = config
        self.task_reward = task_reward
        self.lexicon = lexicon
        self.live = live  # train.recording.LiveDynamics (--report-to trackers) or None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        table = self._rollout_table(inputs, output)  # local rows, in sampling order, tagged
        planning = _padded_mask(table[C.PLANNING_MASK], output["completion_ids"])  # (B, T) bool
        logprobs, entropies = self._score(output)  # (B, T), (B, T)
        advantages, num_items, extra = self._credit(output, planning, entropies, table)  # (B, T), ()
        if self.model.training:
            self._record(table, logprobs, entropies, advantages, extra)
        return {**output, "advantages": advantages, "num_items_in_batch": num_items}

    def _rollout_table(self, inputs: list[dict], output: dict) -> pd.DataFrame:
        """This process's completions as rollout rows (EOS excluded), graded and tagged."""
        step = self.state.global_step + 1  # the optimizer step these rollouts feed
        scores = self.task_reward.latest_
        lengths = output["completion_mask"].sum(dim=1).tolist()  # (B,)
        prompt_ids, prompt_mask = output["prompt_ids"].tolist(), output["prompt_mask"].tolist()
        if len(scores) != len(inputs):
            raise RuntimeError(f"task reward graded {len(scores)} completions for a batch of {len(inputs)}")
        rows = []
        for i, (example, ids, length, score) in enumerate(zip(inputs, output["completion_ids"].tolist(), lengths,
                                                             scores)):
            ids = ids[:int(length)]
            ended = bool(ids) and ids[-1] in self.eos_token_ids
            ids = ids[:-1] if ended else ids
            text, offsets = token_offsets(self._tokenizer, ids)
            rows.append({
                C.STEP: step, C.CHECKPOINT: "base" if step == 1 else f"step_{step - 1}",
                C.PROMPT_ID: example["prompt_id"], C.SAMPLE_ID: i % self.num_generations,
                C.PROMPT: example["question"],
                C.PROMPT_TOKEN_IDS: [t for t, m in zip(prompt_ids[i], prompt_mask[i]) if m],
                C.RESPONSE: text, C.TOKEN_IDS: ids, C.ANSWER: example["answer"], C.PRED: score.pred,
                C.REWARD: score.reward, C.CORRECT: score.correct, C.N_TOKENS: len(ids), C.TRUNCATED: not ended,
                C.TOKEN_OFFSETS: [list(o) for o in offsets]})
        return tag_rollouts(pd.DataFrame(rows), self.lexicon)

    @torch.no_grad()
    def _score(self, output: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token logprobs and entropies of the completions under the current weights: (B, T) each."""
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)  # (B, P+T)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)  # (B, P+T)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model, input_ids, attention, output["completion_ids"].size(1),
            batch_size=self.args.per_device_train_batch_size, compute_entropy=True)
        return logps.float(), entropies.float()

    def _credit(self, output: dict, planning: torch.Tensor, entropies: torch.Tensor, table: pd.DataFrame):
        """Per-token advantages (B, T) for the configured method, the loss's token count, and what to log."""
        cfg = self.hicra_config
        adv = output["advantages"]  # (B,) TRL's group-normalised advantages
        valid = output["completion_mask"].bool()  # (B, T)
        num_items = output["num_items_in_batch"]
        if cfg.method == "hicra" and cfg.planning_source == "lexicon":
            return hicra_advantages(adv, planning, cfg.alpha), num_items, {}
        if cfg.method == "hicra":
            correct = torch.tensor(table[C.CORRECT].astype(bool).tolist(), device=adv.device)  # (B,)
            chosen = heuristic_selection_mask(entropies, valid, correct, self.num_generations,
                                              cfg.heuristic_quantile)
            return heuristic_advantages(adv, chosen, cfg.alpha), num_items, {}
        per_token = per_token_advantages(adv, valid)  # (B, T)
        if cfg.method == "entropy-topk":
            pooled = self._gathered(entropies[valid])  # (N_all,) the real tokens of every process
            threshold = entropy_topk_threshold(pooled, cfg.entropy_quantile)
            chosen = entropy_topk_mask(entropies, valid, threshold=threshold)  # (B, T)
            selected = self.accelerator.gather(chosen.sum()[None]).sum()
            logged = {"entropy_threshold": float(threshold), "selected_tokens": int(selected),
                      "threshold_tokens": int(pooled.numel())}
            return per_token * chosen, selected.to(num_items.dtype), logged
        return per_token, num_items, {}  # grpo, entropy-reg (the bonus is TRL's entropy_coef)

    def _gathered(self, values: torch.Tensor) -> torch.Tensor:
        """The 1-D ``values`` of every process, concatenated (padding of uneven lengths dropped)."""
        pad = -1e9  # below any entropy: marks the padding
        padded = self.accelerator.pad_across_processes(values.float(), dim=0, pad_index=pad)
        gathered = self.accelerator.gather(padded)
        return gathered[gathered != pad]

    def _record(self, table: pd.DataFrame, logprobs, entropies, advantages, extra: dict) -> None:
        """Write RUN/rollouts/step_N.parquet and push the step's metrics into TRL's logs."""
        n = table[C.N_TOKENS].tolist()
        table = table.assign(**{
            C.LOGPROBS: [logprobs[i, :k].cpu().numpy() for i, k in enumerate(n)],  # float32 arrays
            C.ENTROPIES: [entropies[i, :k].cpu().numpy() for i, k in enumerate(n)],
            C.ADVANTAGES: [advantages[i, :k].cpu().numpy() for i, k in enumerate(n)]})
        table = pd.DataFrame(gather_object(table.to_dict("records")))
        step = int(table[C.STEP].iloc[0])
        metrics = step_metrics(table)
        if self.accelerator.is_main_process:
            write_parquet(step_file(self.hicra_config.out, step), table)
            if self.live is not None:
                self.live.record(step, metrics, table)
        for name, value in {**metrics, **extra}.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._metrics["train"][name].append(value)


def _padded_mask(masks, like: torch.Tensor) -> torch.Tensor:
    """Per-row bool lists as a (B, T) bool tensor shaped and placed like ``like``; False past each list."""
    out = torch.zeros(like.shape, dtype=torch.bool)  # (B, T)
    for i, mask in enumerate(masks):
        out[i, :len(mask)] = torch.as_tensor(list(mask), dtype=torch.bool)
    return out.to(like.device)
