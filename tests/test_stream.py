"""Text-only analyze, streamed step by step (analysis.stream): the same numbers as the whole-table route,
the same for any number of workers, one row group per step, no torch, JSONL through pyarrow."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from reasonlens import columns as C
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.analysis.run import analyze
from reasonlens.cli import app
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.tag import tag_response
from reasonlens.metrics.dynamics import dynamics_table, pass_grid
from reasonlens.sources.answers import answers_equivalent, extract_boxed
from reasonlens.sources import logs

RESPONSES = [
    "Let's break this down. First, 3 + 4 = 7. So the answer is \\boxed{7}.",
    "Wait, let me check again: 3 + 4 = 7, but wait, hmm, I think it is \\boxed{8}.",
    "Alternatively, we can count up. 3, 4, 5, 6, 7. Therefore \\boxed{7}.",
    "The total is 7. Let me verify this by subtracting: 7 - 4 = 3. \\boxed{7}",
    "Hmm, that's not right. On second thought the sum is \\boxed{6}.",
]


def write_verl_dump(folder: Path, steps=(0, 1, 2, 3, 4), seed=0) -> Path:
    """A verl rollout dump ({step}.jsonl: input, output, gts, score, step); group sizes vary (4 or 2 samples,
    3 prompts a step) so the pass@k grid and pass_k come from all steps, and the last step has fewer samples."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for step in steps:
        lines = []
        for prompt in range(3):
            for _ in range(2 if step == steps[-1] else 4):
                text = " ".join(rng.choice(RESPONSES, size=int(rng.integers(1, 4))))
                lines.append({"input": f"Q{prompt}: what is 3 + 4?", "output": text, "gts": "7",
                              "score": float(rng.random() > 0.5), "step": step})
        (folder / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def reference_dynamics(log: Path) -> pd.DataFrame:
    """The plain route: the whole log read, each row graded by math-verify on its own, tagged row by row with
    tag_response, dynamics_table (clustering answers with math-verify as it goes) over it."""
    table = logs.read_rollout_log(log)
    table[C.PRED] = [extract_boxed(r) for r in table[C.RESPONSE]]
    table[C.CORRECT] = [p is not None and answers_equivalent(g, p) for g, p in zip(table[C.ANSWER], table[C.PRED])]
    tags = pd.DataFrame([tag_response(t, "paper") for t in table[C.RESPONSE]], index=table.index)
    defaults = AnalyzeConfig(rollouts=log)
    return dynamics_table(table.join(tags), bootstrap=defaults.bootstrap, seed=defaults.seed)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same dump analyzed with 1 and 2 workers (through the CLI, --workers)."""
    root = tmp_path_factory.mktemp("stream")
    log = write_verl_dump(root / "dump")
    for workers in (1, 2):
        result = CliRunner().invoke(app, ["analyze", "--rollouts", str(log), "--out", str(root / f"w{workers}"),
                                          "--workers", str(workers)])
        assert result.exit_code == 0, result.output
    return root, log


def test_dynamics_equal_the_whole_table_route(runs):
    root, log = runs
    streamed = pd.read_parquet(root / "w1" / "dynamics.parquet")
    expected = reference_dynamics(log)
    assert list(streamed.columns) == list(expected.columns)  # pass_at_4 on every step, same order
    assert streamed["pass_k"].tolist() == [4] * 5 and np.isnan(streamed["pass_at_4"].iloc[-1])
    pd.testing.assert_frame_equal(streamed, expected, check_exact=False, rtol=1e-12, atol=0, check_dtype=False)


def test_two_workers_give_the_same_results(runs):
    root, _ = runs
    for name in ("dynamics.parquet", "rollouts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(root / "w2" / name), pd.read_parquet(root / "w1" / name))
    summaries = [json.loads((root / w / "summary.json").read_text()) for w in ("w1", "w2")]
    assert [s["workers"] for s in summaries] == [1, 2] and summaries[0]["phases"] == summaries[1]["phases"]


def test_rollouts_parquet_has_one_row_group_per_step(runs):
    root, _ = runs
    meta = pq.ParquetFile(root / "w2" / "rollouts.parquet").metadata
    # 5 steps: 4 of 3 prompts x 4 samples, the last of 3 x 2
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [12, 12, 12, 12, 6]
    assert not (root / "w2" / "parts").exists()  # the step parts are gone once it is written


def test_analysis_reads_rollouts_lazily(runs):
    root, _ = runs
    analysis = analyze(AnalyzeConfig(rollouts=runs[1], out=root / "w1", workers=1, report=False), progress=False)
    assert analysis._rollouts is None and "responses=54" in repr(analysis)
    assert len(analysis.rollouts) == 54 and C.GRAMS in analysis.rollouts


def test_pass_grid_by_hand():
    # groups of 4 samples (3 of them) and of 2 (5 of them): the grid goes to 4 (the largest group), pass_k is 2
    # (the most common size; ties go to the larger)
    assert pass_grid(pd.Series([4, 4, 4, 2, 2, 2, 2, 2])) == ([1, 2, 4], 2)
    assert pass_grid(pd.Series([4, 4, 2, 2, 8])) == ([1, 2, 4, 8], 4)


def test_a_step_split_over_two_files_is_refused(tmp_path):
    log = write_verl_dump(tmp_path / "dump", steps=(0, 1))
    rows = (log / "1.jsonl").read_text().replace('"step": 1', '"step": 0')
    (log / "1.jsonl").write_text(rows)
    with pytest.raises(ReasonlensError, match=r"step 0 is in .*0\.jsonl.* and in .*1\.jsonl"):
        analyze(AnalyzeConfig(rollouts=log, out=tmp_path / "out", workers=1, report=False), progress=False)


def test_workers_must_be_positive():
    with pytest.raises(ReasonlensError, match="workers"):
        AnalyzeConfig(rollouts=Path("x"), workers=0)


def test_text_only_analyze_imports_no_torch(runs, tmp_path):
    code = ("import sys; from reasonlens.analysis.config import AnalyzeConfig; from reasonlens.analysis.run import "
            f"analyze; analyze(AnalyzeConfig(rollouts={str(runs[1])!r}, out={str(tmp_path / 'o')!r}, workers=1), "
            "progress=False); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_jsonl_columnar_reader_equals_the_line_reader(tmp_path):
    # ints, floats, null, booleans, unicode: the pyarrow route gives the values json.loads gives
    rows = [{"step": 0, "prompt": "p", "response": "caf\u00e9 \U0001d400", "score": 1, "correct": None},
            {"step": 1, "prompt": "q", "response": "so", "score": 0.5, "correct": True}]
    file = tmp_path / "log.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast = logs._read_jsonl_columnar(file.read_bytes())
    assert fast is not None and fast.to_dict("records") == [{**r, "_where": f"line {i + 1}"} for i, r in enumerate(rows)]
    # a blank line (rows are no longer line numbers) or a nested value: the strict reader runs instead
    file.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert logs._read_jsonl_columnar(file.read_bytes()) is None
    file.write_text(json.dumps({**rows[0], "prompt": [{"role": "user", "content": "p"}]}) + "\n")
    assert logs._read_jsonl_columnar(file.read_bytes()) is None
    file.write_text('{"step": 0, "prompt": "p"}\n{"step": "late"\n')
    with pytest.raises(ReasonlensError, match="line 2 is not valid JSON"):
        logs.read_rollout_log(file)


@pytest.mark.slow
def test_ray_steps_equal_the_pool(runs, tmp_path):
    ray = pytest.importorskip("ray")
    root, log = runs
    try:
        analyze(AnalyzeConfig(rollouts=log, out=tmp_path / "ray", ray=True, report=False), progress=False)
    finally:
        ray.shutdown()
    for name in ("dynamics.parquet", "rollouts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(root / "w1" / name))
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["workers"] == "ray"


def test_each_answer_pair_is_checked_once_in_shares_and_kept_for_a_rerun(tmp_path, monkeypatch):
    from reasonlens.analysis import steps, stream
    from reasonlens.analysis.record import Record
    from reasonlens.progress import progress_bar
    from reasonlens.sources import answers

    calls, grade = [], answers.grade_pairs
    monkeypatch.setattr(answers, "grade_pairs", lambda pairs: calls.append(list(pairs)) or grade(pairs))

    def check(*args):  # in this process, no progress bar shown
        return stream.check_pairs(lambda fn, tasks: map(fn, tasks), *args, progress_bar(False))

    pairs = {("7", "7"), ("7", "8"), ("1/2", "\\frac{1}{2}"), ("x", "y"), ("0.5", "1/2")}
    record = Record()
    path = check(pairs, 1, tmp_path, record)
    verdicts = steps.load_verdicts(path, path.stat().st_mtime_ns)
    assert verdicts == {p: answers_equivalent(*p) for p in pairs}
    assert verdicts[("1/2", "\\frac{1}{2}")] and not verdicts[("7", "8")]
    # one worker: min(5 pairs, 4 shares a worker) = 4 shares, every pair in exactly one of them
    assert len(calls) == 4 and sorted(p for share in calls for p in share) == sorted(pairs)
    assert record.seconds["grade"] > 0
    # a rerun in the same folder checks only the pair it has not seen, and keeps every verdict
    calls.clear()
    path = check(pairs | {("3", "3.0")}, 1, tmp_path, Record())
    assert calls == [[("3", "3.0")]]
    assert steps.load_verdicts(path, path.stat().st_mtime_ns) == verdicts | {("3", "3.0"): True}
    written = path.stat().st_mtime_ns  # nothing new: the file is left as it is (a --watch poll rewrites nothing)
    assert check(pairs, 1, tmp_path, Record()) == path
    assert path.stat().st_mtime_ns == written
    # made by another math-verify (another cache key): checked again
    monkeypatch.setattr(steps, "verdicts_key", lambda: "other")
    calls.clear()
    check({("7", "8")}, 1, tmp_path, Record())
    assert calls == [[("7", "8")]]


def test_step_workers_run_with_one_thread_and_glibc_keeping_freed_memory():
    import os

    from reasonlens.analysis import stream

    with stream.task_runner(2) as run:
        seen = list(run(os.getenv, list(stream.WORKER_ENV)))  # read in the spawned workers
    assert seen == list(stream.WORKER_ENV.values()) and seen[0] == "1"
    assert os.getenv("MALLOC_MMAP_THRESHOLD_") != stream.WORKER_ENV["MALLOC_MMAP_THRESHOLD_"]  # this process restored


def test_a_parquet_log_is_read_in_runs_of_row_groups_no_step_spans(tmp_path, runs):
    root, dump = runs
    table = logs.read_rollout_log(dump)  # 54 rows: steps 0-3 of 12 rows, step 4 of 6
    by_step = tmp_path / "by_step.parquet"
    table.to_parquet(by_step, row_group_size=6)  # two row groups a step (one for step 4)
    assert logs.row_group_runs(by_step) == [(0, 1), (2, 3), (4, 5), (6, 7), (8,)]
    spanning = tmp_path / "spanning.parquet"
    table.to_parquet(spanning, row_group_size=5)  # each group shares a step with the next: one run of all
    assert logs.row_group_runs(spanning) == [tuple(range(11))]
    backwards = tmp_path / "backwards.parquet"
    table.iloc[::-1].to_parquet(backwards, row_group_size=6)  # step 4 first: runs still one step each
    assert logs.row_group_runs(backwards) == [(7, 8), (5, 6), (3, 4), (1, 2), (0,)]  # in step order
    assert logs.row_group_runs(dump / "0.jsonl") == [None]
    nested = tmp_path / "nested.parquet"  # a conversation column (two leaf columns) before the step
    table.assign(**{C.PROMPT: [[{"role": "user", "content": p}] for p in table[C.PROMPT]]})[
        [C.PROMPT] + [c for c in table.columns if c != C.PROMPT]].to_parquet(nested, row_group_size=6)
    assert logs.row_group_runs(nested) == logs.row_group_runs(by_step)
    layout = logs.detect_layout(by_step)
    assert [key for key, _ in layout.parts] == logs.row_group_runs(by_step)
    for log in (by_step, backwards):  # analyzed step by step: the numbers of the dump itself
        out = tmp_path / f"out_{log.stem}"
        analyze(AnalyzeConfig(rollouts=log, out=out, workers=2, report=False), progress=False)
        pd.testing.assert_frame_equal(pd.read_parquet(out / "dynamics.parquet"),
                                      pd.read_parquet(root / "w1" / "dynamics.parquet"))


def test_a_bad_value_in_a_row_group_names_its_row_in_the_file(tmp_path, runs):
    table = logs.read_rollout_log(runs[1])
    table.loc[40, C.REWARD] = float("inf")  # step 3, in the file's row group 6 (rows 36-41)
    path = tmp_path / "log.parquet"
    table.to_parquet(path, row_group_size=6)
    with pytest.raises(ReasonlensError, match=r"row 40: reward = inf"):
        analyze(AnalyzeConfig(rollouts=path, out=tmp_path / "out", workers=1, report=False), progress=False)


def test_a_script_without_a_main_guard_gets_a_clear_error(runs, tmp_path):
    # spawned workers import the calling script again: unguarded, each re-runs analyze() and dies (our lock
    # stops it); the caller gets one ReasonlensError saying what to do, not a BrokenProcessPool traceback
    script = tmp_path / "unguarded.py"
    script.write_text("from reasonlens.analysis.config import AnalyzeConfig\nfrom reasonlens.analysis.run import analyze\n"
                      f"analyze(AnalyzeConfig(rollouts={str(runs[1])!r}, out={str(tmp_path / 'out')!r}, workers=2, "
                      "report=False), progress=False)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    error = "reasonlens.errors.ReasonlensError: a worker process died"  # (the workers print errors of their own)
    said = [line for line in done.stderr.splitlines() if line.startswith(error)]
    assert len(said) == 1 and "__main__" in said[0]


def _interleaved_log(path: Path) -> list[dict]:
    """A JSON-lines log whose steps 0-2 come in runs and interleaved, its last line without a newline."""
    steps = [2, 2, 0, 0, 0, 1, 2, 1, 1, 0]
    rows = [{"step": s, "prompt": f"q{i % 3}", "response": f"so {i} \u00e9", "answer": "4", "reward": i % 2}
            for i, s in enumerate(steps)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return rows


def test_a_large_jsonl_log_is_read_a_step_at_a_time_from_its_lines(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    rows = _interleaved_log(log)
    whole = logs.read_rollout_log(log)
    monkeypatch.setattr(logs, "SPLIT_BYTES", 0)
    monkeypatch.setattr(logs, "_BLOCK", 200)  # several blocks, lines cut across them
    sizes = [len(json.dumps(r)) + 1 for r in rows]
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    end = sum(sizes) - 1  # the last line has no newline

    def span(first, last):  # lines first..last (1-based), by hand
        return (starts[first - 1], starts[last] if last < len(rows) else end, first)

    pieces = logs.step_lines(log)
    assert pieces == [(span(3, 5), span(10, 10)), (span(6, 6), span(8, 9)), (span(1, 2), span(7, 7))]
    layout = logs.detect_layout(log)
    assert [key for key, _ in layout.parts] == pieces
    step1 = layout.read_part(*layout.parts[1][::-1])
    assert step1["response"].tolist() == ["so 5 \u00e9", "so 7 \u00e9", "so 8 \u00e9"]
    pd.testing.assert_frame_equal(logs.read_rollout_log(log), whole)
    # a bad value is named with its line in the file, by the strict reader of the step's lines (blocks of one line
    # each parse; the step's lines mix a number and a word, which the columnar reader refuses)
    rows[7]["reward"] = "high"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setattr(logs, "_BLOCK", 1)
    assert len(logs.step_lines(log)) == 3
    with pytest.raises(ReasonlensError, match=r"line 8: reward = 'high' is not a number"):
        logs.read_rollout_log(log)
    # a line longer than pyarrow's block (1 MB): found all the same
    long = {"step": 1, "prompt": "p", "response": "so " * 400_000}
    log.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], long, rows[1])))
    monkeypatch.setattr(logs, "_BLOCK", 16 << 20)
    assert [[first for _, _, first in piece] for piece in logs.step_lines(log)] == [[2], [1, 3]]
    # no integer step on every line, or a blank line: the whole file at once (its reader names the problem)
    for bad in ('{"step": 0.5, "prompt": "p", "response": "r"}', '{"step": "3", "prompt": "p", "response": "r"}',
                '{"prompt": "p", "response": "r"}', '[1, 2]', '{"step": 0', ""):
        log.write_text(json.dumps(rows[0]) + "\n" + bad + "\n" + json.dumps(rows[1]) + "\n")
        assert logs.step_lines(log) == [None], bad
    # a nested value (a conversation prompt): that step's lines go to the strict reader, as the whole file would
    nested = {"step": 1, "prompt": [{"role": "user", "content": "p"}], "response": "r"}
    log.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], nested, rows[1], rows[2])))
    assert len(logs.step_lines(log)) == 3
    monkeypatch.setattr(logs, "SPLIT_BYTES", 1 << 30)
    whole = logs.read_rollout_log(log)
    monkeypatch.setattr(logs, "SPLIT_BYTES", 0)
    by_step = logs.read_rollout_log(log)  # a step without conversations has no messages column: NaN once joined
    by_step[C.PROMPT_MESSAGES] = by_step[C.PROMPT_MESSAGES].where(by_step[C.PROMPT_MESSAGES].notna(), None)
    pd.testing.assert_frame_equal(by_step, whole)
    assert whole[C.PROMPT_MESSAGES].notna().sum() == 1
    # a line that is not UTF-8 is named
    log.write_bytes(json.dumps(rows[0]).encode() + b"\n" + b'{"step": 1, "prompt": "p", "response": "\xff"}\n')
    assert len(logs.step_lines(log)) == 2
    with pytest.raises(ReasonlensError, match="line 2 is not UTF-8 text"):
        logs.read_rollout_log(log)


def test_a_large_jsonl_log_streams_to_the_numbers_of_the_whole_file(tmp_path, runs, monkeypatch):
    root, dump = runs
    log = tmp_path / "run.jsonl"
    table = pd.read_parquet(root / "w1" / "rollouts.parquet")
    rows = table[[C.STEP, C.PROMPT, C.RESPONSE, C.ANSWER]].sample(frac=1.0, random_state=0)  # steps interleaved
    log.write_text("".join(json.dumps(r) + "\n" for r in rows.to_dict("records")))
    analyze(AnalyzeConfig(rollouts=log, out=tmp_path / "whole", report=False), progress=False)
    monkeypatch.setattr(logs, "SPLIT_BYTES", 0)
    monkeypatch.setattr(logs, "_BLOCK", 4096)
    assert len(logs.step_lines(log)) == table[C.STEP].nunique()
    analyze(AnalyzeConfig(rollouts=log, out=tmp_path / "steps", report=False, workers=1), progress=False)
    for name in ("dynamics.parquet", "rollouts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "steps" / name),
                                      pd.read_parquet(tmp_path / "whole" / name))


def test_a_log_that_grew_is_analyzed_again_in_the_same_process(tmp_path):
    """The steps come with the tasks: a process that analyzed the log before (Jupyter, --watch with --workers 1)
    does not reuse the parts it listed then (it raised IndexError)."""
    log = write_verl_dump(tmp_path / "dump", steps=(0, 1))
    config = AnalyzeConfig(rollouts=log, out=tmp_path / "out", workers=1, report=False)
    assert analyze(config, progress=False).dynamics[C.STEP].tolist() == [0, 1]
    write_verl_dump(tmp_path / "more", steps=(2,))
    (tmp_path / "more" / "2.jsonl").rename(log / "2.jsonl")
    assert analyze(config, progress=False).dynamics[C.STEP].tolist() == [0, 1, 2]
