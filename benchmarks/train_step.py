"""One train-hicra step and one GRPO step of a random-init SmolLM2-135M-shaped policy, timed stage by stage.

Run (CUDA):                 PYTHONPATH=. python3 benchmarks/train_step.py [--path auto|own|trl]
Run (CPU, toy shape, ~10 s): PYTHONPATH=. python3 benchmarks/train_step.py --dry-run [--path own]

Two paths (--path; auto = trl where TRL is installed, else own), named in every JSON line ("path"):
- trl: the real `train_hicra` run, its stages timed from outside (benchmarks/_trl_step.py says how);
- own: the step assembled from our own pieces, in the order `reasonlens.train.trainer.HicraTrainer` runs them,
  for a machine without TRL: a lent GPU has neither TRL nor a network to fetch it.
The own path's stages, CUDA synchronised at each boundary:
  generate    model.generate samples max_new_tokens per completion (EOS off: every completion full length);
  tag         the trainer's rollout table: text and token offsets from the ids (models.offsets), one
              `hierarchy.tag.tag_rollouts`, the planning mask as a (B, T) tensor (hicra only: plain GRPO
              has no tag stage; `train-hicra --method grpo` still tags, for its logs);
  score       per-token logprobs and entropies without gradient (`models.scoring.score_tokens`, the fused
              Triton reducer on CUDA), as the trainer's `_score` pass; fp32, outside autocast;
  advantages  `grpo_advantages` of the rewards, then `hicra_advantages` (hicra) or `per_token_advantages`;
  loss        forward/backward of TRL's DAPO loss (clipped ratio, sum over tokens / batch tokens) in
              micro-batches under bf16 autocast (CUDA; fp32 weights, as train-hicra's GPU default), AdamW step.
Both paths share the policy, the sizes and seeded random 0/1 rewards (the own path times no grading; the
trl path runs the task's reward too, always 0 for a random policy, and adds the random one).
Own path: the generated ids of a random policy are word salad, so the completions the later stages see are
synthetic long chains of thought (benchmarks/_corpus.py) encoded by a byte-level BPE trained on that text
at start-up: the tagger meets planning phrases at a realistic rate. Time: one untimed warm-up step per
method, then the median of each stage over --repeats steps; a stage's share is its median over the sum.
Output: one JSON line per (size, method), then the last line, a JSON object with all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _corpus import long_chains_of_thought
from scoring import machine
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonlens import columns as C
from reasonlens.hierarchy.tag import tag_rollouts
from reasonlens.models.offsets import token_offsets
from reasonlens.models.scoring import score_tokens, select_reducer
from reasonlens.train.advantages import grpo_advantages, hicra_advantages, per_token_advantages

# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M-Instruct); the dry run keeps its layout, tiny.
SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                     rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
DRY_SHAPE = {**SMOLLM2_SHAPE, "vocab_size": 2048, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
# name -> (prompts, generations per prompt, completion tokens, sequences per micro-batch).
# "cli" is train-hicra's defaults (TrainConfig); "long" a GPU-sized batch of long reasoning.
SIZES = {"cli": (4, 4, 96, 16), "long": (8, 8, 512, 16)}
DRY_SIZES = {"dry": (2, 4, 24, 4)}
PROMPT_TOKENS = 32
ALPHA, EPSILON, EPSILON_HIGH, LR = 0.2, 0.2, 0.28, 1e-5  # TrainConfig's defaults


def corpus_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (GPT-2 style, as SmolLM2's) trained on ``texts``: token_offsets' fast route."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def batch_ids(tokenizer, texts: list[str], n: int, length: int) -> list[list[int]]:
    """``n`` rows of exactly ``length`` token ids: the texts encoded back to back, cut into rows."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer.encode(text + "\n\n")
        if len(ids) >= n * length:
            break
    if len(ids) < n * length:
        raise RuntimeError(f"the corpus holds {len(ids)} tokens, fewer than {n} x {length}")
    return [ids[i * length:(i + 1) * length] for i in range(n)]


def _policy(shape: dict, device: str):
    """A random-init Llama of SmolLM2's shape in fp32 (train-hicra's GPU weights), EOS never sampled."""
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**shape))
    model.generation_config.eos_token_id = None  # every completion runs to max_new_tokens
    return model


def dapo_loss(logits, targets, advantages, total_tokens: int):
    """TRL's DAPO loss at one iteration (old logp = logp): -min(r A, clip(r) A) summed / ``total_tokens``.

    logits (b, T, V), targets (b, T) long, advantages (b, T) float; r = exp(logp - logp.detach()) = 1 with
    the gradient of logp, clipped to [1 - EPSILON, 1 + EPSILON_HIGH].
    """
    logits = logits.float()
    logp = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (b, T)
    ratio = torch.exp(logp - logp.detach())
    clipped = ratio.clamp(1 - EPSILON, 1 + EPSILON_HIGH)
    return -torch.min(ratio * advantages, clipped * advantages).sum() / total_tokens


class _Stages:
    """Wall-clock seconds per named stage, the device synchronised before each reading."""

    def __init__(self, sync):
        self.sync, self.seconds, self._last = sync, {}, None

    def start(self):
        self.sync()
        self._last = time.perf_counter()

    def mark(self, name: str):
        self.sync()
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()


def _tag(tokenizer, completions: list[list[int]], device: str):
    """The trainer's rollout table and its tagging -> (B, T) bool planning mask (True = planning token)."""
    rows = []
    for ids in completions:
        text, offsets = token_offsets(tokenizer, ids)
        rows.append({C.RESPONSE: text, C.TOKEN_IDS: ids, C.TOKEN_OFFSETS: [list(o) for o in offsets]})
    table = tag_rollouts(pd.DataFrame(rows), "paper")
    return torch.tensor(table[C.PLANNING_MASK].tolist(), dtype=torch.bool, device=device)  # equal lengths


def _loss(model, optimizer, ids, n_prompt: int, advantages, micro: int, device: str) -> tuple[float, float]:
    """Forward/backward of the DAPO loss over micro-batches, clip at 1.0 (TRL's), AdamW step -> (loss, norm)."""
    model.train()
    n_completion = ids.shape[1] - n_prompt
    loss = torch.zeros((), device=device)
    for first in range(0, len(ids), micro):
        part = ids[first:first + micro]  # (b, P + T)
        with _autocast(device):
            logits = model(input_ids=part, logits_to_keep=n_completion + 1).logits[:, :-1]  # (b, T, V)
        part_loss = dapo_loss(logits, part[:, n_prompt:], advantages[first:first + micro], advantages.numel())
        part_loss.backward()
        loss += part_loss.detach()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss), float(norm)


def one_step(method: str, model, optimizer, tokenizer, batch: dict, *, device: str) -> dict:
    """One hicra or grpo step on ``batch`` (prompts, completions, rewards, generations, micro); stage seconds
    and what the step computed."""
    prompts, completions, micro = batch["prompts"], batch["completions"], batch["micro"]
    stages = _Stages(torch.cuda.synchronize if device == "cuda" else (lambda: None))
    stages.start()
    prompt_ids = torch.tensor(prompts, device=device)  # (B, P)
    model.eval()
    with torch.no_grad(), _autocast(device):
        model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=True,
                       max_new_tokens=len(completions[0]), pad_token_id=tokenizer.pad_token_id)
    stages.mark("generate")
    planning = _tag(tokenizer, completions, device) if method == "hicra" else None  # (B, T) bool
    if planning is not None:
        stages.mark("tag")
    scored = score_tokens(model, prompts, completions, batch_size=micro)  # reducer auto: fused on CUDA
    entropies = torch.from_numpy(np.stack([entropy for _, entropy in scored])).to(device)  # (B, T), logged
    stages.mark("score")
    advantages = grpo_advantages(batch["rewards"].to(device), batch["generations"])  # (B,)
    valid = torch.ones(len(completions), len(completions[0]), dtype=torch.bool, device=device)  # no padding
    per_token = hicra_advantages(advantages, planning, ALPHA) if planning is not None \
        else per_token_advantages(advantages, valid)  # (B, T)
    stages.mark("advantages")
    ids = torch.cat([prompt_ids, torch.tensor(completions, device=device)], dim=1)  # (B, P + T)
    loss, norm = _loss(model, optimizer, ids, prompt_ids.shape[1], per_token, micro, device)
    stages.mark("loss")
    return {"seconds": stages.seconds, "loss": loss, "grad_norm": norm, "mean_entropy": float(entropies.mean()),
            "planning_token_share": None if planning is None else float(planning.float().mean())}


def _batch(tokenizer, texts, size: tuple, vocab: int, seed: int) -> dict:
    """Prompt rows (each prompt G times), completion rows, random 0/1 rewards for one step of ``size``."""
    prompts, generations, length, micro = size
    rows = batch_ids(tokenizer, texts, prompts + prompts * generations, max(length, PROMPT_TOKENS))
    prompt_rows = [row[:PROMPT_TOKENS] for row in rows[:prompts] for _ in range(generations)]
    rewards = torch.randint(0, 2, (prompts * generations,), generator=torch.Generator().manual_seed(seed))
    if max(max(row) for row in rows) >= vocab:
        raise RuntimeError(f"the tokenizer's ids reach past the model's vocabulary of {vocab}")
    return {"prompts": prompt_rows, "completions": [row[:length] for row in rows[prompts:]],
            "rewards": rewards.float(), "generations": generations, "micro": micro}


def run_method(method: str, model, optimizer, tokenizer, batch: dict, *, repeats: int, device: str) -> dict:
    """An untimed warm-up step, then ``repeats`` steps: median seconds per stage, shares, peak memory."""
    one_step(method, model, optimizer, tokenizer, batch, device=device)  # compile, allocate
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = [one_step(method, model, optimizer, tokenizer, batch, device=device)
             for _ in range(repeats)]
    seconds = {name: statistics.median(step["seconds"][name] for step in steps) for name in steps[0]["seconds"]}
    total = sum(seconds.values())
    last = steps[-1]
    return {"method": method, "seconds": seconds, "step_seconds": total,
            "shares": {name: value / total for name, value in seconds.items()},
            "tag_share": seconds.get("tag", 0.0) / total, "advantages_share": seconds["advantages"] / total,
            "loss": last["loss"], "grad_norm": last["grad_norm"], "mean_entropy": last["mean_entropy"],
            "planning_token_share": last["planning_token_share"],
            "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None}


def _trl_version():
    """TRL's installed version or None, read from its metadata (importing TRL would pull in datasets)."""
    try:
        return metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None


OWN_PATH = ("own pieces in HicraTrainer's order (TRL not used): generate, tag, score, advantages, DAPO loss "
            "forward/backward + AdamW")
TRL_PATH = "train_hicra (TRL GRPOTrainer + HicraTrainer), its stages timed from outside (benchmarks/_trl_step.py)"


def _own_steps(args, device, sizes, texts, tokenizer, model, vocab: int):
    """Yield (size name, size, result) of the own-pieces step for each size and method."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    for name, size in sizes.items():
        batch = _batch(tokenizer, texts, size, vocab, args.seed)
        for method in ("hicra", "grpo"):
            yield name, size, run_method(method, model, optimizer, tokenizer, batch, repeats=args.repeats,
                                         device=device)


def _trl_steps(args, device, sizes, texts, tokenizer, model, vocab: int):
    """Yield (size name, size, result) of a real train_hicra run for each size and method."""
    from _trl_step import save_policy, trl_method

    problems = [(f"Tom has {i} apples and buys 3 more. How many apples does he have?", str(i + 3))
                for i in range(max(size[0] for size in sizes.values()))]
    with tempfile.TemporaryDirectory() as folder:
        save_policy(model, tokenizer, Path(folder), problems)
        for name, size in sizes.items():
            for method in ("hicra", "grpo"):
                yield name, size, trl_method(method, Path(folder), size, label=name, repeats=args.repeats,
                                             device=device, seed=args.seed)


def main(args) -> None:

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train_step.py needs a CUDA device; torch sees none (use --dry-run on CPU).")
    trl = _trl_version()
    path = ("trl" if trl else "own") if args.path == "auto" else args.path
    if path == "trl" and trl is None:
        raise SystemExit("--path trl needs TRL (pip install reasonlens installs it); use --path own.")
    torch.set_num_threads(args.threads)
    shape = DRY_SHAPE if args.dry_run else SMOLLM2_SHAPE
    sizes = DRY_SIZES if args.dry_run else {name: SIZES[name] for name in args.sizes}
    texts = long_chains_of_thought(16 if args.dry_run else 240, seed=0)
    tokenizer = corpus_tokenizer(texts, vocab_size=min(shape["vocab_size"], 8000))
    model = _policy(shape, device)
    common = {"check": "train_step", "trl": trl, "path": OWN_PATH if path == "own" else TRL_PATH,
              "model": "SmolLM2-135M shape, random init" + (" (dry run: 2 layers, hidden 64)" if args.dry_run
                                                            else ""),
              "params": sum(p.numel() for p in model.parameters()), "device": device, "weights": "fp32",
              "autocast": "bf16" if device == "cuda" else None,
              "scoring_reducer": select_reducer("auto", torch.device(device))[0].__name__ if path == "own"
              else "TRL's _get_per_token_logps_and_entropies"}
    steps = (_own_steps if path == "own" else _trl_steps)(args, device, sizes, texts, tokenizer, model,
                                                          shape["vocab_size"])
    lines = []
    for name, size, result in steps:
        lines.append({**common, "size": name, "prompts": size[0], "generations": size[1],
                      "prompt_tokens": PROMPT_TOKENS if path == "own" else None, "completion_tokens": size[2],
                      "micro_batch": size[3], "repeats": args.repeats, **result})
        print(json.dumps(lines[-1]), flush=True)
    print(json.dumps({"check": "train_step", "dry_run": args.dry_run, "steps": lines, "machine": machine()}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="CPU, a 2-layer policy of SmolLM2's layout, 8 completions of 24 tokens (seconds)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES),
                        help="CUDA: cli = train-hicra's defaults (4 prompts x 4 x 96 tokens), long = 8 x 8 x 512")
    parser.add_argument("--path", choices=["auto", "own", "trl"], default="auto",
                        help="own pieces, the real train_hicra (TRL), or auto: TRL where it is installed")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per method after one warm-up")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random 0/1 rewards")
    parser.add_argument("--threads", type=int, default=1, help="CPU torch threads")
    return parser


if __name__ == "__main__":
    main(_parser().parse_args())
