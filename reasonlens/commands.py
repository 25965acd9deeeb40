"""What the `reasonlens tag` and `reasonlens mine-grams` commands do, so the CLI stays thin.

`tag`: text in, planning spans, gram counts and (with a tokenizer) per-token labels out.
`mine-grams`: correct responses of a rollout file in, a lexicon file plus a cluster report out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.lexicon import load_lexicon, write_lexicon
from reasonlens.hierarchy.tag import tag_response
from reasonlens.hierarchy.tagger import PlanningTagger, gram_counts


def read_text(text: str | None, file: Path | None) -> str:
    """The text to tag: the argument, else the file, else stdin."""
    if text is not None and file is not None:
        raise ReasonlensError("tag got both TEXT and --file: expected one of them (or neither, to read stdin)")
    if file is None:
        return text if text is not None else sys.stdin.read()
    if not Path(file).is_file():
        raise ReasonlensError(f"--file {str(file)!r} does not exist: expected a UTF-8 text file")
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ReasonlensError(f"--file {str(file)!r} is not UTF-8 text (byte {err.start}: {err.reason}); "
                              "re-save it as UTF-8") from None


def tag_result(text: str, *, lexicon="paper", tokenizer=None, trust_remote_code: bool = False) -> dict:
    """{"text", "lexicon": {name, hash}, "spans": [...], "counts": {...}} plus "tokens" with a tokenizer.

    ``tokenizer`` is a tokenizer object, or a spec for ``reasonlens.models.loading.load_tokenizer``
    ("smollm2", a folder, a .gguf file). With one, the text is its tokens' text (a lower-casing
    tokenizer such as WordPiece returns its own normalised text) and each token is labelled.
    """
    lexicon = load_lexicon(lexicon)
    offsets = None
    if tokenizer is not None:
        from reasonlens.models.offsets import token_offsets

        if isinstance(tokenizer, (str, Path)):
            from reasonlens.models.loading import load_tokenizer

            tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
        text, offsets = token_offsets(tokenizer, tokenizer.encode(text, add_special_tokens=False))
    found = PlanningTagger(lexicon).find(text)  # every occurrence, for the spans shown
    result = {"text": text, "lexicon": {"name": lexicon.name, "hash": lexicon.hash},
              "spans": [m._asdict() for m in found], "counts": gram_counts(found)}
    if offsets is not None:
        mask = tag_response(text, lexicon, offsets)[C.PLANNING_MASK]
        result["tokens"] = [{"text": text[s:e], "start": s, "end": e, "planning": bool(p)}
                            for (s, e), p in zip(offsets, mask)]
    return result


def highlighted(result: dict):
    """A rich Text of the result's text with the planning spans (union of all occurrences) styled."""
    from rich.text import Text

    out = Text(result["text"])
    for span in result["spans"]:
        out.stylize("bold magenta", span["start"], span["end"])
    return out


def read_correct_responses(path: Path, reward_threshold: float = 0.5) -> list[str]:
    """Responses marked correct (``correct``, else ``reward`` > threshold) of a Parquet/JSONL file, parsed strictly."""
    from reasonlens.sources.files import read_records
    from reasonlens.sources.logs import parse_bool, parse_reward

    records = read_records(path, "rollout file", '{"response": ..., "correct": true}')
    names = set().union(*(fields for _, fields in records))
    if C.RESPONSE not in names:
        raise ReasonlensError(f"rollout file {str(path)!r} has no {C.RESPONSE!r} column (has {sorted(names)})")
    label = C.CORRECT if C.CORRECT in names else C.REWARD if C.REWARD in names else None
    if label is None:
        raise ReasonlensError(f"rollout file {str(path)!r} has neither {C.CORRECT!r} nor {C.REWARD!r}: mining uses "
                              "correct responses only; add one of these columns")
    keep = []
    for where, fields in records:
        try:
            ok = parse_bool(fields.get(C.CORRECT)) if label == C.CORRECT else \
                parse_reward(fields.get(C.REWARD)) > reward_threshold
        except ValueError as err:
            raise ReasonlensError(f"rollout file {path} {where}: {label} = {fields.get(label)!r} is {err}. Fix "
                                  "that value and rerun.") from None
        if ok and isinstance(fields.get(C.RESPONSE), str):
            keep.append(fields[C.RESPONSE])
    return keep


def mine_grams_file(rollouts: Path, out: Path, *, reward_threshold: float = 0.5, threads: int | None = None,
                    **miner_options):
    """Mine a lexicon from a rollout file; write ``out`` and ``<out stem>.clusters.csv``.

    Returns (miner, report_path, n_responses).
    """
    from reasonlens.hierarchy.mining import StrategicGramMiner
    from reasonlens.models.hardware import runtime, set_threads
    from reasonlens.records import write_csv

    out, report = Path(out), Path(out).with_name(Path(out).stem + ".clusters.csv")
    if any(p.resolve() == Path(rollouts).resolve() for p in (out, report)):
        raise ReasonlensError(f"mine-grams: --out {out} would overwrite the input {rollouts}; choose another file.")
    if out.is_dir():
        raise ReasonlensError(f"mine-grams: --out {out} is a folder; give the lexicon file to write, e.g. mined.txt.")
    responses = read_correct_responses(rollouts, reward_threshold)
    if not responses:
        raise ReasonlensError(f"rollout file {str(rollouts)!r} has no correct responses: nothing to mine from")
    threads = set_threads(threads)
    miner = StrategicGramMiner(**miner_options).fit(responses)
    write_lexicon(out, miner.lexicon_, {"source": str(rollouts),
                                        "method": "arXiv 2509.03646 section 2.1 (reasonlens mine-grams)",
                                        "config": miner.config_, "runtime": runtime("cpu", "fp32", threads)})
    table = miner.clusters_.assign(members=miner.clusters_["members"].map(" | ".join))
    write_csv(report, table)
    return miner, report, len(responses)
