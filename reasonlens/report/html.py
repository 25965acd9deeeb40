"""``OUT/report.html`` and ``comparison.html``: self-contained pages (inline CSS, figures as base64 PNG,
no external URL), rendered from tables and dicts only.

Report sections: summary and phases in words, figures, the dynamics table, example responses per
step with planning tokens highlighted and token entropies on hover, and the configuration.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.metrics.columns import TOKEN_PROBABILITY_COLUMNS, ci_high, ci_low
from reasonlens.records import write_text
from reasonlens.report import highlight, narrative

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:24px;color:#222;line-height:1.5}
h1{margin-bottom:0}h2{border-bottom:2px solid #eee;padding-bottom:4px;margin-top:36px}
.sub{color:#666;margin-top:4px}.evidence{color:#555;font-size:.9em;margin:2px 0 10px 18px}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;position:sticky;top:0}td.key,th.key{text-align:left}
.scroll{overflow-x:auto;max-height:560px;overflow-y:auto}.na{color:#999;font-style:italic}
figure{margin:18px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#666;font-size:.9em}
.meta{color:#555;font-size:.9em;margin:10px 0 4px}.legend .plan{background:#fdd9b5;padding:0 4px}
""" + highlight.RESPONSE_CSS
CAPTIONS = {
    "dynamics": "The dynamics per step (the paper's four panels; without token probabilities, the panels the text "
                "supports). Shaded: 95% bootstrap intervals, prompts resampled with all their samples. Dashed "
                "vertical lines: detected phase boundaries.",
    "overlap": "How often planning tokens are high-entropy (top {quantile:.0%} within the step), and the reverse.",
    "advantages": "Mean per-token credit the loss used, on planning vs execution tokens (HICRA adds "
                  "alpha*|A| on planning tokens only).",
    "top_grams": "The most frequent strategic grams, counted per step.",
}


def page(title: str, body: str) -> str:
    """A complete HTML document with the report's inline stylesheet."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def figure_html(path: Path, caption: str = "") -> str:
    """An ``<img>`` with the PNG inlined as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(caption or Path(path).stem)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">{cap}</figure>'


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="na">unavailable</td>'
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def with_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """The table with each metric that has interval columns written 'value [low, high]' and those columns dropped."""
    out = df.copy()
    for column in [c for c in df.columns if ci_low(c) in df.columns and ci_high(c) in df.columns]:
        values, low, high = df[column], df[ci_low(column)], df[ci_high(column)]
        out[column] = [v if not (pd.notna(v) and pd.notna(a) and pd.notna(b)) else f"{v:.4g} [{a:.3g}, {b:.3g}]"
                       for v, a, b in zip(values, low, high)]
        out = out.drop(columns=[ci_low(column), ci_high(column)])
    return out


def table_html(df: pd.DataFrame) -> str:
    """The table with floats to 4 significant digits, intervals as 'value [low, high]', NaN as 'unavailable'."""
    df = with_intervals(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>"
                   for row in df.astype(object).itertuples(index=False))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _plain(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def config_html(summary: dict) -> str:
    """Key/value table: configuration, what ran (device, dtype, threads), lexicon, version, date, skipped inputs."""
    provenance = summary.get("provenance") or {}
    rows = [("mode", summary.get("mode"))]
    rows += [(k, v) for k, v in (summary.get("config") or {}).items()]
    rows += [(f"ran: {k}", v) for k, v in (summary.get("runtime") or {}).items()]
    rows += [(f"problems: {k}", v) for k, v in (summary.get("problems") or {}).items()]
    lexicon = summary.get("lexicon") or {}
    rows += [(f"lexicon {k}", v) for k, v in lexicon.items()]
    rows += [("reasonlens version", provenance.get("reasonlens_version")),
             ("git hash", provenance.get("git_hash")), ("date", provenance.get("date")),
             ("skipped inputs", summary.get("skipped") or None)]
    body = "".join(f'<tr><td class="key">{html.escape(str(k))}</td><td class="key">{html.escape(_plain(v))}</td></tr>'
                   for k, v in rows if not (k == "mode" and v is None))
    return f"<table><tbody>{body}</tbody></table>"


def unavailable_columns(dynamics: pd.DataFrame) -> list[str]:
    """Token-probability columns that are missing or all NaN (text-only analyses)."""
    return [c for c in TOKEN_PROBABILITY_COLUMNS if c not in dynamics or dynamics[c].isna().all()]


def summary_html(summary: dict, dynamics: pd.DataFrame) -> str:
    """The overview and the phase sentences with their evidence."""
    missing = unavailable_columns(dynamics)
    text_only = summary.get("mode") == "text-only" or len(missing) == len(TOKEN_PROBABILITY_COLUMNS)
    lines = "".join(f"<p>{html.escape(s)}</p>" for s in narrative.overview(summary, dynamics, missing, text_only))
    phases = "".join(f"<li><p>{html.escape(s)}</p>" + (f'<p class="evidence">Evidence: {html.escape(e)}</p>'
                                                       if e else "") + "</li>"
                     for s, e in narrative.phase_sentences(summary.get("phases"), dynamics))
    return f"{lines}<h3>Phases</h3><ul>{phases}</ul>"


def example_meta(row: pd.Series) -> str:
    """'step 30 · prompt p0 · sample 2 · reward 0.0 · …' for one rollout row."""
    parts = [f"step {row.get(C.STEP)}"]
    for col, label in ((C.PROMPT_ID, "prompt"), (C.SAMPLE_ID, "sample"), (C.REWARD, "reward"),
                       (C.CORRECT, "correct"), (C.PRED, "answer"), (C.ANSWER, "gold")):
        value = row.get(col)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            parts.append(f"{label} {value}")
    return " · ".join(parts)


def examples_html(rollouts: pd.DataFrame, phases: dict | None, *, n_steps: int = 4, per_step: int = 2) -> str:
    """Best and worst responses at a few steps (first, last, phase boundaries), highlighted."""
    if rollouts is None or not len(rollouts):
        return "<p>No responses recorded.</p>"
    boundaries = [p.get("step") for p in (phases or {}).values() if isinstance(p, dict) and p.get("detected")]
    steps = highlight.example_steps(list(rollouts[C.STEP]), boundaries, n_steps)
    blocks = []
    for _, row in highlight.pick_examples(rollouts, steps, per_step).iterrows():
        prompt = row.get(C.PROMPT)
        question = f"<p class=\"meta\">Q: {html.escape(str(prompt))}</p>" if isinstance(prompt, str) else ""
        blocks.append(f'<div class="meta"><b>{html.escape(example_meta(row))}</b></div>{question}'
                      f'<div class="resp">{highlight.response_html(row)}</div>')
    note = ('<p class="legend"><span class="plan">highlighted</span> = planning tokens (overlap a strategic '
            "gram); underline darkness = token entropy (relative to the response's highest); hover a token "
            "for its value.</p>")
    return note + "".join(blocks)


def write_report(out_dir, *, summary: dict, dynamics: pd.DataFrame, rollouts: pd.DataFrame | None,
                 figures: list) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    Parameters
    ----------
    out_dir : the analysis folder.
    summary : the ``summary.json`` dict (config, provenance, lexicon, phases, ...).
    dynamics : the dynamics table, one row per step.
    rollouts : the tagged rollout table: ``token_offsets`` + ``planning_mask`` give per-token
        highlighting with entropies, else the ``planning_spans`` are highlighted in the text.
    figures : PNG paths to inline, in order.

    Examples
    --------
    >>> write_report("out", summary=summary, dynamics=dynamics, rollouts=rollouts,
    ...              figures=save_figures("out", dynamics, top_grams(rollouts), summary["phases"]))  # doctest: +SKIP
    PosixPath('out/report.html')
    """
    title = "reasonlens analysis"
    config = summary.get("config") or {}
    where = config.get("path") or config.get("rollouts")
    quantile = config.get("high_entropy_quantile", 0.3)
    captions = "".join(figure_html(p, CAPTIONS.get(Path(p).stem, "").format(quantile=quantile)) for p in figures)
    body = [f"<h1>{title}</h1>",
            f'<p class="sub">{html.escape(str(where or Path(out_dir).resolve()))}</p>',
            "<h2>Summary</h2>", summary_html(summary, dynamics),
            "<h2>Figures</h2>", captions or "<p>No figures.</p>",
            "<h2>Dynamics table</h2>", table_html(dynamics),
            "<h2>Example responses</h2>", examples_html(rollouts, summary.get("phases")),
            "<h2>Configuration</h2>", config_html(summary)]
    return write_text(Path(out_dir) / "report.html", page(title, "\n".join(body)))


def comparison_page(runs: list[tuple[str, str, dict, list[str]]], combined: pd.DataFrame, pngs: list[Path]) -> str:
    """The comparison page: per run (label, folder, lexicon, phase sentences), the figures, the combined table."""
    esc = html.escape
    blocks = []
    for label, folder, lexicon, sentences in runs:
        items = "".join(f"<li>{esc(s)}</li>" for s in sentences)
        blocks.append(f"<h3>{esc(label)}</h3><p class=\"sub\">{esc(folder)} · lexicon "
                      f"{esc(str(lexicon.get('name')))} ({esc(str(lexicon.get('hash')))})</p><ul>{items}</ul>")
    hashes = {lexicon.get("hash") for _, _, lexicon, _ in runs}
    warn = ("<p><b>Note:</b> these analyses use different strategic-gram lexicons, so planning/execution "
            "curves are not strictly comparable.</p>" if len(hashes) > 1 else "")
    body = ["<h1>reasonlens comparison</h1>", warn, "<h2>Runs and phases</h2>", *blocks,
            "<h2>Figures</h2>", *(figure_html(p) for p in pngs),
            "<h2>Combined dynamics table</h2>", table_html(combined)]
    return page("reasonlens comparison", "\n".join(body))
