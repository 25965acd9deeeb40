"""Re-score logged rollouts with the checkpoints that wrote them: token statistics without generating.

``reasonlens analyze CKPTS --rollouts LOG``: a verl or TRL run leaves text dumps and checkpoints on
disk; each logged step is tokenized and scored teacher-forced by the checkpoint of that step (the one
with the same step number; otherwise the nearest earlier one, recorded per step, or refused with
``--strict-steps``). Steps with no checkpoint at or before them are listed and skipped. Prompts: a
conversation (a list of messages, as TRL logs conversational prompts) goes through the checkpoint's
chat template; a string is taken as the exact text the model saw (verl's ``input`` and TRL's text
prompts are logged that way). Each step's scores are cached like generated ones
(``OUT/rollouts/step_NNNNNN.parquet``), keyed by the step's text and the checkpoint's weight files.
"""

from __future__ import annotations

import gc

import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.generate import checkpoint_records, load_checkpoint, tokenizer_spec, weights_fingerprint
from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.analysis.record import Record
from reasonlens.errors import ReasonlensError
from reasonlens.records import cache_key, read_cached, step_file, text_digest, write_cached

RESCORE_VERSION = 1  # bump when the content of a re-scored step file changes


def match_steps(log_steps, checkpoint_steps, *, strict: bool = False) -> tuple[dict[int, int], list[int]]:
    """Which checkpoint step scores each logged step: the same step, else the nearest earlier one.

    Returns ``({log step: checkpoint step}, [log steps with no checkpoint at or before them])``;
    with ``strict``, a step without a checkpoint of its own is an error.

    >>> match_steps([0, 5, 10, 12], [0, 10])
    ({0: 0, 5: 0, 10: 10, 12: 10}, [])
    >>> match_steps([3, 8], [5])
    ({8: 5}, [3])
    """
    available = sorted(set(int(s) for s in checkpoint_steps))
    mapping, skipped, inexact = {}, [], []
    for step in sorted(set(int(s) for s in log_steps)):
        earlier = [c for c in available if c <= step]
        if not earlier:
            skipped.append(step)
            continue
        mapping[step] = earlier[-1]
        if earlier[-1] != step:
            inexact.append(step)
    if strict and inexact:
        raise ReasonlensError(f"--strict-steps: logged step(s) {inexact} have no checkpoint of their own "
                              f"(checkpoints: {available}); drop --strict-steps to score each with the nearest "
                              "earlier checkpoint.")
    return mapping, skipped


def rescore_log(plan: Plan, log: pd.DataFrame, bar) -> tuple[Inputs, Record]:
    """``log`` (the --rollouts table) with token ids, offsets, logprobs and entropies from each step's checkpoint,
    and the record of what scored it (runtime, the checkpoint of each step)."""
    from reasonlens.models.hardware import resolve_device, resolve_dtype_name, runtime, set_threads

    config = plan.config
    by_step = {c.step: c for c in plan.series.checkpoints}
    mapping, skipped = match_steps(log[C.STEP].unique(), by_step, strict=config.strict_steps)
    if not mapping:
        raise ReasonlensError(f"no logged step of {config.rollouts} (steps {sorted(log[C.STEP].unique())}) has a "
                              f"checkpoint at or before it in {config.path} (checkpoints: {sorted(by_step)}).")
    threads = set_threads(config.threads)
    device = resolve_device(config.device)
    dtype = resolve_dtype_name(config.dtype, device)
    record = Record(
        runtime=runtime(device, dtype, threads) | {"backend": "none (logged text)", "scoring": "teacher-forced"},
        step_checkpoints=[{"step": s, "checkpoint": by_step[c].name, "checkpoint_step": c, "exact": s == c}
                          for s, c in mapping.items()] + [{"step": s, "skipped": "no checkpoint at or before it"}
                                                          for s in skipped])
    settings = {"score_temperature": config.score_temperature, "device": device, "dtype": dtype}
    frames = []
    task = bar.add_task("re-score steps", total=len(mapping))
    for ckpt_step in sorted(set(mapping.values())):
        ckpt = by_step[ckpt_step]
        steps = [s for s, c in mapping.items() if c == ckpt_step]
        keyed = {}
        for step in steps:
            frame = log[log[C.STEP] == step].reset_index(drop=True)
            prompts = frame[C.PROMPT_MESSAGES].map(repr) if C.PROMPT_MESSAGES in frame else frame[C.PROMPT].astype(str)
            key = cache_key("rescored", RESCORE_VERSION, weights_fingerprint(ckpt.path), settings,
                            text_digest(prompts + "\0" + frame[C.RESPONSE]))
            keyed[step] = (frame, key, read_cached(step_file(plan.out, step), key))
        todo = {s: v for s, v in keyed.items() if v[2] is None}
        if todo:
            scored = _score_steps(ckpt, {s: v[0] for s, v in todo.items()}, plan, device, dtype, record)
            for step, table in scored.items():
                write_cached(step_file(plan.out, step), todo[step][1], table, step=step, checkpoint=ckpt.name,
                             path=str(ckpt.path), n_responses=len(table))
                keyed[step] = (None, None, table)
        for step in steps:
            frames.append(keyed[step][2])
            bar.advance(task)
    bar.remove_task(task)
    used = [c for c in plan.series.checkpoints if c.step in set(mapping.values())]
    return Inputs(pd.concat(frames, ignore_index=True), tokenizer=tokenizer_spec(plan.series.checkpoints[-1]),
                  checkpoints=checkpoint_records(used)), record


def _score_steps(ckpt, frames: dict[int, pd.DataFrame], plan: Plan, device: str, dtype: str,
                 record: Record) -> dict[int, pd.DataFrame]:
    """Load ``ckpt`` once and score every response of its steps, teacher-forced."""
    from reasonlens.models.offsets import token_offsets
    from reasonlens.models.scoring import score_tokens

    config = plan.config
    model, tokenizer = load_checkpoint(ckpt, config, device, dtype, record)
    out = {}
    for step, frame in frames.items():
        prompts = [_prompt_ids(tokenizer, row, ckpt) for _, row in frame.iterrows()]
        responses = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in frame[C.RESPONSE]]
        with record.timed("score"):
            scores = score_tokens(model, prompts, responses, temperature=config.score_temperature,
                                  batch_size=config.batch_size, reducer=config.scoring)
        texts = [token_offsets(tokenizer, ids) for ids in responses]
        out[step] = frame.assign(**{
            C.CHECKPOINT: ckpt.name, C.PROMPT_TOKEN_IDS: prompts, C.TOKEN_IDS: responses,
            C.RESPONSE: [t for t, _ in texts], C.TOKEN_OFFSETS: [[list(o) for o in offs] for _, offs in texts],
            C.N_TOKENS: [len(r) for r in responses], C.LOGPROBS: [lp.tolist() for lp, _ in scores],
            C.ENTROPIES: [e.tolist() for _, e in scores]})
    del model
    gc.collect()
    return out


def _prompt_ids(tokenizer, row: pd.Series, ckpt) -> list[int]:
    """A logged prompt's token ids: a conversation through the chat template, a string as it is."""
    messages = row.get(C.PROMPT_MESSAGES)
    if isinstance(messages, list):
        if not getattr(tokenizer, "chat_template", None):
            raise ReasonlensError(f"logged step {row[C.STEP]} has a conversational prompt but {ckpt.name}'s tokenizer "
                                  "has no chat template; log the prompt as the text the model saw.")
        text = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True)
    else:
        text = str(row[C.PROMPT])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ReasonlensError(f"logged step {row[C.STEP]}, prompt {row.get(C.PROMPT_ID)}: the prompt is empty, so its "
                              "response cannot be scored; fix the log.")
    return ids
