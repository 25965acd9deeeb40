"""Shared by the hostile-input suites (tests/test_hostile_*.py): run the CLI in-process and check a refusal.

`refused` asserts the exit code, that the message names the input, that no traceback is printed, that the
output folder holds no half-written file (nothing under a temporary name, no summary.json of a failed run)
and that every input file is byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from reasonlens.cli import app

runner = CliRunner()
SMALL = ["--task", "basic_arithmetic", "--num-prompts", "1", "--samples", "2", "--max-new-tokens", "4",
         "--device", "cpu", "--dtype", "fp32", "--no-report"]
TRAIN = ["--steps", "1", "--prompts-per-step", "2", "--num-generations", "2", "--max-new-tokens", "4",
         "--num-prompts", "2", "--dtype", "fp32", "--report-to", "none"]


def _digests(paths) -> dict:
    out = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out.update({str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    return out


def refused(args, *, names, inputs=(), out=None, stdin=None, code=1):
    """Run ``reasonlens ARGS``; check the refusal and return the output (newlines folded)."""
    before = _digests(inputs)
    had_summary = out is not None and (Path(out) / "summary.json").exists()
    result = runner.invoke(app, [str(a) for a in args], input=stdin)
    text = " ".join(result.output.split())
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "File \"" not in result.output, result.output
    assert text.startswith("error:") or "\nerror:" in result.output or "error:" in text, result.output
    for name in names:
        assert " ".join(str(name).split()) in text, (name, result.output)
    assert _digests(inputs) == before, "an input was changed"
    if out is not None and Path(out).exists():
        assert not list(Path(out).rglob("*.tmp-*")), "a half-written file was left"
        assert (Path(out) / "summary.json").exists() == had_summary, "a failed run left a summary.json"
    return text


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def small_log(tmp_path, **overrides) -> Path:
    rows = [{"step": 0, "prompt": "q", "response": "so it is 4", "correct": True, "reward": 1.0}] * 1 + \
           [{"step": 1, "prompt": "q", "response": "but wait", "correct": False, "reward": 0.0}]
    rows[-1] = {**rows[-1], **overrides}
    return write_jsonl(tmp_path / "log.jsonl", rows)
