"""benchmarks/text_scale.py's helpers: the single-file log it builds, and the grading it times apart."""

import json

import pandas as pd

from benchmark_modules import benchmark_module

text_scale = benchmark_module("text_scale")


def test_the_single_file_log_joins_the_step_files_in_step_order_once(tmp_path):
    dump = tmp_path / "champ_11"
    dump.mkdir()
    for step in range(11):  # 10.jsonl sorts before 2.jsonl by name
        (dump / f"{step}.jsonl").write_text(json.dumps({"step": step}) + "\n")
    path = text_scale.single_file(dump)
    assert path == tmp_path / "champ_11.jsonl"
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == list(range(11))
    written = path.stat().st_mtime_ns
    assert text_scale.single_file(dump) == path and path.stat().st_mtime_ns == written


def test_grading_is_timed_over_the_analysis_verdicts_in_a_fresh_process(tmp_path):
    verdicts = tmp_path / "verdicts.parquet"
    pd.DataFrame({"x": ["1", "1/2"], "y": ["1", "0.5"], "equivalent": [True, True]}).to_parquet(verdicts)
    seconds = text_scale.grading_cpu_seconds(verdicts, text_scale.REPO)
    assert 0 < seconds < 60
