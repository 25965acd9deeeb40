"""Writers of each framework's on-disk rollout records, for the tests (schemas from the frameworks' source).

Each writer produces exactly the keys and nesting its framework's writer produces (file cited per
function); the values are chosen by the tests, so expected metrics can be computed independently.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path


def jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def verl_rows(step: int, prompts: list[str], outputs: list[list[str]], scores, gts, *, kind: str) -> list[dict]:
    """Rows of verl's ``_write_generations`` (verl/trainer/ppo/v1/trainer_base.py) for one step.

    kind: "v1" (adds uid = {uuid4}_{session}_{index}), "legacy" (adds reward_extra_info keys acc/pred as
    written with default=str, i.e. numpy bools as "True"/"False"), "validation" (adds reward = score,
    acc, uid).
    """
    rows, k = [], 0
    for prompt, outs, gt in zip(prompts, outputs, gts):
        group = str(uuid.uuid4())  # drawn anew every step, as in the trainer
        for session, out in enumerate(outs):
            row = {"input": prompt, "output": out, "gts": gt, "score": scores[k], "step": step}
            if kind == "legacy":
                row.update(acc=str(scores[k] > 0), pred=out.split()[-1], request_id=f"req-{k}")
            if kind == "validation":
                row.update(reward=scores[k], acc=scores[k] > 0)
            if kind in ("v1", "validation"):
                row["uid"] = f"{group}_{session}_0"
            rows.append(row)
            k += 1
    return rows


def prime_rl_record(step: int, rank: int, idx: int, prompt_ids: list[int], completion_ids: list[int],
                    logprobs: list[float], entropies: list[float], advantage: float, vocab: int) -> dict:
    """One record of prime-rl's TokenExporter (src/prime_rl/trainer/rl/token_export.py, 559b447).

    ``logprobs``/``entropies`` are those of the completion tokens; prompt positions carry what the
    trainer computes there (shifted right, position 0 padded with log(1/V) and log V: train.py).
    """
    n_prompt, n = len(prompt_ids), len(prompt_ids) + len(completion_ids)
    trainer_lp = [math.log(1.0 / vocab)] + [-0.5] * (n_prompt - 1) + list(logprobs)
    entropy = [math.log(vocab)] + [2.0] * (n_prompt - 1) + list(entropies)
    mask = [False] * n_prompt + [True] * len(completion_ids)
    return {"schema_version": 1, "step": step, "rank": rank, "micro_step": 0, "micro_sequence_idx": idx,
            "export_sequence_idx": idx, "env_name": "math", "token_ids": prompt_ids + completion_ids,
            "position_ids": list(range(n)), "loss_mask": mask,
            "advantages": [0.0] * n_prompt + [advantage] * len(completion_ids),
            "inference_logprobs": [v - 0.01 for v in trainer_lp], "trainer_logprobs": trainer_lp,
            "entropy": entropy, "mismatch_kl": [0.0] * n, "log_importance_ratio": [0.0] * n,
            "importance_ratio": [1.0] * n, "prob_delta": [0.0] * n, "is_masked": [False] * n,
            "is_masked_high": [False] * n, "is_masked_low": [False] * n,
            "rl_weights": [None] * n, "ce_weights": [None] * n, "ref_kl_weights": [None] * n}


def nemo_record(idx: int, messages: list[str], prompt_ids: list[int], completion_ids: list[int],
                logprobs: list[float], reward: float, advantage: float, pad_to: int, pad_id: int) -> dict:
    """One line of NeMo-RL's ``log_batched_dict_as_jsonl`` for grpo's train data (nemo_rl/utils/logger.py,
    nemo_rl/algorithms/grpo.py): each value is the sample's one-element batch slice, token arrays
    right-padded to the batch length, generation_logprobs 0 outside the generated tokens."""
    n = len(prompt_ids) + len(completion_ids)
    pad = pad_to - n
    gen = [0.0] * len(prompt_ids) + list(logprobs) + [0.0] * pad
    mask = [0] * len(prompt_ids) + [1] * len(completion_ids) + [0] * pad
    return {"content": [messages], "rewards": [reward], "input_lengths": [n],
            "token_ids": [prompt_ids + completion_ids + [pad_id] * pad], "token_loss_mask": [mask],
            "sample_loss_mask": [1.0], "advantages": [[advantage * m for m in mask]],
            "generation_logprobs": [gen], "prev_logprobs": [[v + 0.02 for v in gen]], "idx": idx}


def areal_record(task_id: int, sample_idx: int, prompt: str, completion: str, prompt_len: int, completion_len: int,
                 reward: float, version: int) -> dict:
    """One line of AReaL's ``_dump_trajectory`` (areal/infra/workflow_executor.py)."""
    return {"task_id": task_id, "sample_idx": sample_idx, "seqlen": prompt_len + completion_len,
            "prompt_len": prompt_len, "head_version": version, "tail_version": version, "reward": reward,
            "prompt": prompt, "completion": completion}


def roll_dump(folder: Path, step: int, prompts: list[str], responses: list[str], scores: list[float],
              golds: list[str], ids: list[str]) -> Path:
    """ROLL's ``write_to_json_process`` (roll/pipeline/rlvr/utils.py): ONE line of column arrays."""
    n = len(responses)
    columns = {"id": ids, "source": ["math"] * n, "prompt": prompts, "ground_truth": golds, "tag": ["m"] * n,
               "domain": ["math_rule"] * n, "responses": responses, "scores": scores,
               "sampling_params": [json.dumps({"temperature": 1.0})] * n, "global_step": [step] * n}
    path = folder / f"rollout_dump_data.step_{step}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(columns, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def slime_sample(index: int, prompt: str, response: str, label: str, reward, tokens: list[int],
                 logprobs: list[float], status: str = "completed") -> dict:
    """``Sample.to_dict()`` (slime/utils/types.py) with the fields the reader uses and a few it ignores."""
    return {"group_index": index // 2, "index": index, "rollout_id": None, "prompt": prompt, "tokens": tokens,
            "multimodal_inputs": None, "response": response, "response_length": len(logprobs), "label": label,
            "reward": reward, "loss_mask": [1] * len(logprobs), "weight_versions": ["1"],
            "rollout_log_probs": logprobs, "status": status, "metadata": {},
            "spec_info": {"spec_accept_token_num": 0}, "prefix_cache_info": {"cached_tokens": 0}}
