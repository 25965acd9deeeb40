"""`accelerate launch --num_processes 2` of `train-hicra` on CPU (gloo): every completion logged exactly once,
exact HICRA credit on every row, the entropy top-k threshold taken over both processes' tokens, and resume.

accelerate's CPU multi-process route is mpirun; ``--multi_gpu`` on a machine without a GPU runs torchrun,
whose processes accelerate joins over gloo: the same code path a GPU launch takes, minus NCCL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reasonlens import columns as C

pytestmark = pytest.mark.slow  # trains under `accelerate launch` with 2 processes

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
LEXICON = ["the", "so", "is", "to", "we", "and", "a", "x", "of", "wait", "let's", "but", "first", "apples"]


def _launch(model, problems, lexicon, out, *, method="hicra", steps=2, resume=False):
    accelerate = Path(sys.executable).with_name("accelerate")
    args = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
            "no", "--dynamo_backend", "no", "-m", "reasonlens.cli", "train-hicra", "--model", str(model),
            "--prompts-file", str(problems), "--lexicon", str(lexicon), "--out", str(out), "--method", method,
            "--steps", str(steps), "--prompts-per-step", "2", "--num-generations", "4", "--max-new-tokens", "16",
            "--num-prompts", "4", "--save-every", "1", "--lr", "1e-2", "--dtype", "fp32", "--threads", "1",
            "--report-to", "none", *(["--resume"] if resume else [])]
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    if shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("accelerate's launcher is not installed")
    root = tmp_path_factory.mktemp("multiprocess")
    problems, lexicon = root / "problems.jsonl", root / "lexicon.txt"
    problems.write_text("".join(json.dumps({"question": f"Tom has {i} apples and buys 3 more. How many?",
                                            "answer": str(i + 3)}) + "\n" for i in range(4)))
    lexicon.write_text("\n".join(LEXICON) + "\n")
    return {"root": root, "problems": problems, "lexicon": lexicon, "model": tiny_model_dir}


def _rollouts(run):
    return pd.concat([pd.read_parquet(p) for p in sorted((run / "rollouts").glob("step_*.parquet"))], ignore_index=True)


def test_two_processes_log_every_completion_once_with_exact_credit_and_resume(setup):
    run = _launch(setup["model"], setup["problems"], setup["lexicon"], setup["root"] / "hicra")
    config = json.loads((run / "config.json").read_text())
    assert config["runtime"]["processes"] == 2 and config["trl_args"]["per_device_train_batch_size"] == 4
    table = _rollouts(run)
    for step, rows in table.groupby(C.STEP):
        # 2 prompts x 4 completions per step, half from each process, each exactly once
        assert len(rows) == 8 and not rows.duplicated([C.PROMPT_ID, C.SAMPLE_ID]).any()
        assert rows.groupby(C.PROMPT_ID).size().tolist() == [4, 4]
    planning_tokens = 0
    for adv, planning in zip(table[C.ADVANTAGES], table[C.PLANNING_MASK]):
        adv, planning = np.asarray(adv, dtype=np.float32), np.asarray(planning, dtype=bool)
        if (~planning).any():
            a = adv[~planning][0]
            assert np.all(adv[~planning] == a)
            assert np.all(adv[planning] == np.float32(a) + np.float32(0.2) * np.abs(np.float32(a)))
            planning_tokens += planning.sum()
    assert planning_tokens > 0
    _launch(setup["model"], setup["problems"], setup["lexicon"], run, steps=3, resume=True)
    assert list(pd.read_csv(run / "metrics.csv")["step"]) == [1, 2, 3]
    assert sorted(_rollouts(run)[C.STEP].unique()) == [1, 2, 3]


def test_entropy_topk_threshold_is_taken_over_both_processes(setup):
    run = _launch(setup["model"], setup["problems"], setup["lexicon"], setup["root"] / "topk", method="entropy-topk")
    table, metrics = _rollouts(run), pd.read_csv(run / "metrics.csv").set_index("step")
    for step, rows in table.groupby(C.STEP):
        # every real token of both processes: the logged ones plus each finished row's EOS
        assert metrics.loc[step, "threshold_tokens"] == rows[C.N_TOKENS].sum() + (~rows[C.TRUNCATED]).sum()
        threshold = np.float32(metrics.loc[step, "entropy_threshold"])
        for entropies, adv in zip(rows[C.ENTROPIES], rows[C.ADVANTAGES]):
            adv = np.asarray(adv)
            if (adv != 0).any():
                assert np.array_equal(adv != 0, np.asarray(entropies, dtype=np.float32) >= threshold)
