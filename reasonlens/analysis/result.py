"""The notebook API: an `Analysis` holds a finished analysis' tables; ``load_analysis(OUT)`` reads one back.

An analysis folder holds ``summary.json`` (config, lexicon, phases; written last, so its presence
means the folder is complete), ``dynamics.parquet`` (or ``.csv``), ``rollouts.parquet`` (tagged)
and ``lexicon.txt`` (the phrases, checked against the hash in summary.json). Nothing here loads a
model, a tokenizer or a tagger: highlighting reads the rollout table's own columns, and the
figures and pages come from `reasonlens.report`, which only renders tables.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import AnalysisFolderError, ReasonlensError
from reasonlens.report import figures, highlight, narrative
from reasonlens.report import html as report_html


class Analysis:
    """A finished analysis: ``.dynamics`` (one row per step), ``.rollouts`` (one row per response),
    ``.summary`` (summary.json), ``.phases``, ``.config``, ``.lexicon`` and figure methods.

    Examples
    --------
    >>> a = load_analysis("runs/grpo/reasonlens")  # doctest: +SKIP
    >>> a.entropy_figure()                          # doctest: +SKIP
    """

    def __init__(self, path, dynamics: pd.DataFrame, rollouts: pd.DataFrame | None, summary: dict,
                 phrases: tuple[str, ...] = ()):
        self.path = Path(path)
        self.dynamics = dynamics
        self._rollouts = rollouts  # None: read from PATH/rollouts.parquet on first use (it can be GBs)
        self.summary = summary
        self.phrases = tuple(phrases)

    @property
    def rollouts(self) -> pd.DataFrame:
        """The tagged rollout table, one row per response (``rollouts.parquet``, read on first use)."""
        if self._rollouts is None:
            file = self.path / "rollouts.parquet"
            self._rollouts = _table(file) if file.is_file() else pd.DataFrame(columns=[C.STEP])
        return self._rollouts

    @rollouts.setter
    def rollouts(self, table: pd.DataFrame) -> None:
        self._rollouts = table

    def __repr__(self) -> str:
        n = len(self._rollouts) if self._rollouts is not None else self.summary.get("n_responses", "?")
        return (f"Analysis({str(self.path)!r}, steps={len(self.dynamics)}, "
                f"responses={n}, lexicon={self.lexicon.get('name')!r})")

    @property
    def phases(self) -> dict:
        return self.summary.get("phases") or {}

    @property
    def config(self) -> dict:
        return self.summary.get("config") or {}

    @property
    def lexicon(self) -> dict:
        """Name, hash and size of the strategic-gram lexicon (its phrases are ``.phrases``)."""
        return self.summary.get("lexicon") or {}

    def phase_sentences(self) -> list[str]:
        """Each phase in plain words (with its evidence), as the report states them."""
        return [s + (f" Evidence: {e}" if e else "") for s, e in narrative.phase_sentences(self.phases, self.dynamics)]

    def dynamics_figure(self):
        """The paper's four-panel figure with phase boundaries (a matplotlib Figure)."""
        return figures.dynamics_figure(self.dynamics, self.phases)

    def entropy_figure(self):
        """Token entropy of planning, execution and all tokens per step."""
        return figures.entropy_figure(self.dynamics, self.phases)

    def overlap_figure(self):
        """P(high entropy | planning) and P(planning | high entropy) per step."""
        return figures.overlap_figure(self.dynamics, self.phases)

    def advantages_figure(self):
        """Mean per-token credit on planning vs execution tokens (train-hicra runs)."""
        return figures.advantages_figure(self.dynamics, self.phases)

    def top_grams_figure(self, n: int = 12):
        """Heatmap of the most frequent strategic grams per step (the tagged ``grams`` column)."""
        from reasonlens.metrics.dynamics import top_grams

        return figures.top_grams_figure(top_grams(self.rollouts, n=max(n, 10)), n=n)

    def show_response(self, i: int):
        """Response ``i`` (row position in ``.rollouts``) as HTML: planning tokens highlighted, each token's
        entropy on hover (planning spans in the plain text when the analysis has no tokens)."""
        if not 0 <= i < len(self.rollouts):
            n = len(self.rollouts)
            raise ReasonlensError(f"show_response: index i={i} is out of range; this analysis has "
                                  f"{n} responses (rows of .rollouts): pass 0..{n - 1}.")
        row = self.rollouts.iloc[i]
        markup = (f"<style>{highlight.RESPONSE_CSS}</style><p><b>{html.escape(report_html.example_meta(row))}"
                  f"</b></p><div class=\"resp\">{highlight.response_html(row)}</div>")
        try:
            from IPython.display import HTML
        except ImportError:
            return _HTMLText(markup)
        return HTML(markup)


class _HTMLText(str):
    """HTML markup that Jupyter-like front ends render (used when IPython is not installed)."""

    def _repr_html_(self) -> str:
        return str(self)


def load_analysis(out_dir) -> Analysis:
    """Read the analysis folder ``out_dir`` written by ``reasonlens analyze``.

    Raises ReasonlensError naming what is missing when ``out_dir`` is not a finished analysis folder,
    and when its lexicon.txt no longer matches the hash the numbers were computed with.

    Examples
    --------
    >>> a = load_analysis("runs/grpo/reasonlens")            # doctest: +SKIP
    >>> a.dynamics[["step", "rel_ppl_execution"]]; a.phases  # doctest: +SKIP
    """
    path = Path(out_dir)
    has_dynamics = (path / "dynamics.parquet").is_file() or (path / "dynamics.csv").is_file()
    missing = [name for name, ok in (("summary.json", (path / "summary.json").is_file()),
                                     ("dynamics.parquet or dynamics.csv", has_dynamics)) if not ok]
    if not path.is_dir() or missing:
        what = "it does not exist" if not path.is_dir() else "missing " + ", ".join(missing)
        raise AnalysisFolderError(f"load_analysis: {str(path)!r} is not a finished analysis folder ({what}); "
                                  "pass the output folder of `reasonlens analyze` (its --out), or rerun it to "
                                  "finish.", path)
    summary = _read_summary(path)
    dynamics_file = path / "dynamics.parquet" if (path / "dynamics.parquet").is_file() else path / "dynamics.csv"
    dynamics = _table(dynamics_file)
    if C.STEP not in dynamics or not pd.api.types.is_integer_dtype(dynamics[C.STEP]):
        raise AnalysisFolderError(f"load_analysis: {dynamics_file} has no integer {C.STEP!r} column (columns: "
                                  f"{', '.join(map(str, dynamics.columns[:8]))}); the file was edited or damaged: "
                                  "rerun `reasonlens analyze` to rewrite it.", dynamics_file, C.STEP)
    return Analysis(path, dynamics, None, summary, _phrases(path, summary))


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AnalysisFolderError(f"load_analysis: {path / 'summary.json'} is not valid JSON ({err}); "
                                  "rerun `reasonlens analyze` to rewrite it.", path / "summary.json") from None
    if not isinstance(summary, dict):
        raise AnalysisFolderError(f"load_analysis: {path / 'summary.json'} is not a JSON object; rerun "
                                  "`reasonlens analyze` to rewrite it.", path / "summary.json")
    for key, expected in _SUMMARY_TYPES.items():
        value = summary.get(key)
        nested = key == "phases" and isinstance(value, dict) and not all(isinstance(v, dict) for v in value.values())
        if (value is not None and not isinstance(value, expected)) or nested:
            wanted = " or ".join(_JSON_NAMES[t] for t in (expected if isinstance(expected, tuple) else (expected,)))
            shown = "an object holding a non-object" if nested else f"a JSON {_json_name(value)}"
            raise AnalysisFolderError(f"load_analysis: {path / 'summary.json'} field {key!r} is {shown}, expected "
                                      f"{wanted}; the file was edited or damaged: rerun `reasonlens analyze` to "
                                      "rewrite it.", path / "summary.json", key)
    return summary


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
_SUMMARY_TYPES = {"mode": str, "config": dict, "lexicon": dict, "phases": dict, "checkpoints": list,
                  "skipped": list, "provenance": dict, "runtime": dict, "n_responses": int,
                  "tokens_scored": int, "seconds": (int, float)}  # analysis.run.Summary, as read here


def _json_name(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), "number")


def _table(file: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    except (OSError, ValueError) as err:
        raise AnalysisFolderError(f"load_analysis: {file} is unreadable ({str(err).splitlines()[0][:200]}); it may "
                                  "be truncated: rerun `reasonlens analyze` to rewrite it.", file) from None


def _phrases(path: Path, summary: dict) -> tuple[str, ...]:
    """The lexicon.txt phrases, refused when their hash is not the one the analysis recorded."""
    from reasonlens.hierarchy.lexicon import load_lexicon

    file, recorded = path / "lexicon.txt", (summary.get("lexicon") or {}).get("hash")
    if not file.is_file():
        return ()
    lexicon = load_lexicon(file)
    if recorded and lexicon.hash != recorded:
        raise AnalysisFolderError(f"load_analysis: {file} has hash {lexicon.hash} but summary.json records "
                                  f"{recorded}: the lexicon was edited after the analysis. Restore it, or rerun "
                                  f"`reasonlens analyze --lexicon {file}` to recompute the numbers with it.", file,
                                  "lexicon.hash")
    return lexicon.phrases
