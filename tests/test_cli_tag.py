"""`reasonlens tag` and `reasonlens mine-grams` end to end through typer's CliRunner."""

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens.cli import app
from reasonlens.hierarchy.lexicon import load_lexicon

sys.path.insert(0, str(Path(__file__).parent))
from test_mining import FamilyEmbedder, synthetic_corpus  # noqa: E402

runner = CliRunner()


def test_tag_json_spans_and_counts():
    result = runner.invoke(app, ["tag", "But wait, also so.", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "But wait, also so."
    assert {"start": 0, "end": 8, "gram": "but wait"} in data["spans"]
    assert data["counts"] == {"but wait": 1, "so": 1}
    assert data["lexicon"]["name"] == "paper" and "tokens" not in data


def test_tag_reads_stdin_and_highlights():
    result = runner.invoke(app, ["tag"], input="Hmm, let me verify.")
    assert result.exit_code == 0, result.output
    assert "Hmm, let me verify." in result.stdout
    assert "gram occurrences (paper)" in result.output


def test_tag_file_user_lexicon_and_tokenizer(tmp_path, tiny_tokenizer_dir):
    text_file, lexicon_file = tmp_path / "r.txt", tmp_path / "lex.txt"
    text_file.write_text("Let's break down the problem.", encoding="utf-8")
    lexicon_file.write_text("# mine\nbreak down\n", encoding="utf-8")
    result = runner.invoke(app, ["tag", "--file", str(text_file), "--lexicon", str(lexicon_file),
                                 "--tokenizer", str(tiny_tokenizer_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["spans"] == [{"start": 6, "end": 16, "gram": "break down"}]
    planning = "".join(t["text"] for t in data["tokens"] if t["planning"])
    assert planning.strip() == "break down"
    assert "".join(t["text"] for t in data["tokens"]) == data["text"]


def test_tag_missing_lexicon_is_one_red_line(tmp_path):
    result = runner.invoke(app, ["tag", "so", "--lexicon", str(tmp_path / "nope.txt")])
    assert result.exit_code == 1
    assert "error:" in result.output and "does not exist" in result.output


def test_mine_grams_writes_lexicon_and_cluster_report(tmp_path, monkeypatch):
    import reasonlens.hierarchy.mining as mining

    monkeypatch.setattr(mining, "_SentenceEmbedder", lambda spec, batch_size: FamilyEmbedder())
    docs = synthetic_corpus()
    rollouts = tmp_path / "rollouts.jsonl"
    rows = [{"response": d, "correct": True} for d in docs] + [{"response": "wrong wrong wrong x", "correct": False}]
    pd.DataFrame(rows).to_json(rollouts, orient="records", lines=True)
    out = tmp_path / "mined.txt"
    result = runner.invoke(app, ["mine-grams", str(rollouts), "--out", str(out), "--distance-threshold", "0.2"])
    assert result.exit_code == 0, result.output
    assert "60 correct responses" in result.output and "2 kept" in result.output
    lexicon = load_lexicon(out)
    assert "let me double check" in lexicon.phrases
    header = out.read_text().splitlines()[0]
    assert header == f"# lexicon: mined-{lexicon.hash}"
    report = pd.read_csv(tmp_path / "mined.clusters.csv")
    assert list(report.columns) == ["cluster", "members", "size", "cdf", "selected"]
    assert report["selected"].sum() == 2

    # the three miner parameters the command gained: 2-3 word grams, at most 40 embedded, batches of 7
    small = tmp_path / "small.txt"
    result = runner.invoke(app, ["mine-grams", str(rollouts), "--out", str(small), "--distance-threshold", "0.2",
                                 "--ngram-range", "2,3", "--max-ngrams", "40", "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    assert "40 n-grams" in result.output
    assert all(len(p.split()) in (2, 3) for p in load_lexicon(small).phrases)
    line = next(x for x in small.read_text().splitlines() if x.startswith("# config: "))
    config = json.loads(line.removeprefix("# config: "))
    assert config["ngram_range"] == [2, 3] and config["max_ngrams"] == 40 and config["batch_size"] == 7


@pytest.mark.parametrize("rows, message", [
    ([{"response": "a b c"}], r"has neither 'correct' nor 'reward'"),
    ([{"text": "a b c", "correct": True}], r"has no 'response' column"),
    ([{"response": "a b c", "reward": 0.0}], r"has no correct responses"),
], ids=["no-label", "no-response", "none-correct"])
def test_mine_grams_input_errors(tmp_path, rows, message):
    path = tmp_path / "rollouts.parquet"
    pd.DataFrame(rows).to_parquet(path)
    result = runner.invoke(app, ["mine-grams", str(path), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 1
    assert re.search(message, result.output.replace("\n", " "))
