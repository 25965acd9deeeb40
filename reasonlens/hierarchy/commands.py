"""What the `reasonlens tag` and `reasonlens mine-grams` commands do, so the CLI stays thin.

`tag`: text in, planning spans, gram counts and (with a tokenizer) per-token labels out.
`mine-grams`: correct responses of a rollout file in, a lexicon file plus a cluster report out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.lexicon import Lexicon
from reasonlens.hierarchy.tagger import PlanningTagger, gram_counts


def read_text(text: str | None, file: Path | None) -> str:
    """The text to tag: the argument, else the file, else stdin."""
    if text is not None and file is not None:
        raise ReasonlensError("tag got both TEXT and --file: expected one of them (or neither, to read stdin)")
    if file is not None:
        if not Path(file).is_file():
            raise ReasonlensError(f"--file {str(file)!r} does not exist: expected a UTF-8 text file")
        return Path(file).read_text(encoding="utf-8")
    return text if text is not None else sys.stdin.read()


def tag_result(text: str, *, lexicon="paper", tokenizer=None) -> dict:
    """{"text", "lexicon": {name, hash}, "spans": [...], "counts": {...}} plus "tokens" with a tokenizer.

    ``tokenizer`` is a tokenizer object, or a spec for ``reasonlens.models.loading.load_tokenizer``
    ("smollm2", a folder, a .gguf file).
    """
    tagger = PlanningTagger(lexicon).fit()
    found = tagger.find(text)
    result = {
        "text": text,
        "lexicon": {"name": tagger.lexicon_.name, "hash": tagger.lexicon_.hash},
        "spans": [m._asdict() for m in found],
        "counts": gram_counts(found),
    }
    if tokenizer is not None:
        from reasonlens.hierarchy.tokens import tag_tokens
        from reasonlens.models.loading import load_tokenizer

        if isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer)
        result["tokens"] = tag_tokens(text, tokenizer, tagger)
    return result


def highlighted(result: dict):
    """A rich Text of the result's text with the planning spans (union of all occurrences) styled."""
    from rich.text import Text

    out = Text(result["text"])
    for span in result["spans"]:
        out.stylize("bold magenta", span["start"], span["end"])
    return out


def read_correct_responses(path: Path, reward_threshold: float = 0.5) -> list[str]:
    """Responses marked correct (``correct`` column, else ``reward`` > threshold) of a Parquet/JSONL file."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ReasonlensError(f"rollout file {str(path)!r} does not exist: expected rollouts.parquet or a .jsonl file")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix in (".jsonl", ".json"):
        df = pd.read_json(path, lines=path.suffix == ".jsonl")
    else:
        raise ReasonlensError(f"rollout file {str(path)!r} has suffix {path.suffix!r}: expected .parquet or .jsonl")
    if C.RESPONSE not in df.columns:
        raise ReasonlensError(f"rollout file {str(path)!r} has no {C.RESPONSE!r} column (has {list(df.columns)})")
    if C.CORRECT in df.columns:
        keep = df[C.CORRECT].fillna(False).astype(bool)
    elif C.REWARD in df.columns:
        keep = df[C.REWARD].astype(float) > reward_threshold
    else:
        raise ReasonlensError(f"rollout file {str(path)!r} has neither {C.CORRECT!r} nor {C.REWARD!r}: mining uses "
                              "correct responses only; add one of these columns")
    return df.loc[keep, C.RESPONSE].astype(str).tolist()


def write_lexicon(path: Path, lexicon: Lexicon, header: dict) -> Path:
    """One phrase a line, after ``# key: value`` comment lines (readable by ``load_lexicon``)."""
    from reasonlens.records import write_text

    lines = [f"# {key}: {json.dumps(value) if not isinstance(value, str) else value}"
             for key, value in header.items()]
    return write_text(path, "\n".join(lines + list(lexicon.phrases)) + "\n")


def mine_grams_file(rollouts: Path, out: Path, *, reward_threshold: float = 0.5, **miner_options):
    """Mine a lexicon from a rollout file; write ``out`` and ``<out stem>.clusters.csv``.

    Returns (miner, report_path, n_responses).
    """
    from reasonlens.hierarchy.mining import StrategicGramMiner
    from reasonlens.records import write_csv

    responses = read_correct_responses(rollouts, reward_threshold)
    if not responses:
        raise ReasonlensError(f"rollout file {str(rollouts)!r} has no correct responses: nothing to mine from")
    miner = StrategicGramMiner(**miner_options).fit(responses)
    header = {"lexicon": miner.lexicon_.name, "hash": miner.lexicon_.hash, "source": str(rollouts),
              "method": "arXiv 2509.03646 section 2.1 (reasonlens mine-grams)", "config": miner.config_}
    write_lexicon(out, miner.lexicon_, header)
    report = Path(out).with_name(Path(out).stem + ".clusters.csv")
    table = miner.clusters_.assign(members=miner.clusters_["members"].map(" | ".join))
    write_csv(report, table)
    return miner, report, len(responses)
