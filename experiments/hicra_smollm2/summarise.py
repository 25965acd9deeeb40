"""Tables, figures and RESULTS.md of the study from its run folders: means with 95% bootstrap intervals.

``training.csv``: one row per run and training step (the run's metrics.csv: training prompts).
``results.csv``: one row per run and checkpoint, evaluated on held-out problems (`analyze --eval-task`).
``summary.csv``: per method and metric, the mean over seeds, its 95% interval (stats.nested_bootstrap:
seeds, and the held-out prompts of each seed where the run folders hold them) and the number of seeds.
Every sentence of RESULTS.md is computed from these tables, so rerunning the study rewrites it;
``python summarise.py --from-tables`` recomputes summary.csv and the statistics of RESULTS.md from the
committed training.csv and results.csv alone (seed level).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from stats import nested_bootstrap  # noqa: E402 - next to this file

DYNAMICS = ["planning_ratio", "sg_semantic_entropy", "sg_semantic_entropy_change", "rel_ppl_execution",
            "rel_ppl_planning", "ppl_planning", "ppl_execution", "entropy_planning", "entropy_execution",
            "entropy_all", "mean_length", "pass_at_1"]
REASONLENS = str(Path(sys.executable).parent / "reasonlens")
TRAINING = ["reward", "accuracy", "planning_ratio", "sg_semantic_entropy", "entropy_planning", "entropy_execution",
            "advantage_planning", "advantage_execution", "mean_length", "loss"]


def label(run: dict) -> str:
    return f"hicra (alpha {run['alpha']:g})" if run["method"] == "hicra" else run["method"]


def ci95(values, prompts: list | None = None) -> tuple[float, float, float, int]:
    """Mean over seeds and its 95% nested-bootstrap interval (stats.nested_bootstrap), and the number of seeds.

    ``values``: one per seed; ``prompts``: optionally, per seed, the per-prompt values behind it.
    """
    return nested_bootstrap(prompts if prompts else [[v] for v in values])


def tables(root: Path, plan: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, results): the per-step training logs and the per-checkpoint held-out evaluations."""
    training, results = [], []
    for run in plan:
        folder = root / run["name"]
        ids = {"method": label(run), "alpha": run["alpha"], "seed": run["seed"]}
        metrics = pd.read_csv(folder / "metrics.csv")
        training.append(metrics[["step"] + [c for c in TRAINING if c in metrics]].assign(**ids))
        dynamics = pd.read_parquet(folder / "reasonlens-eval" / "dynamics.parquet")
        frame = dynamics[["step", "mean_reward", "accuracy"] + [c for c in DYNAMICS if c in dynamics]]
        frame = frame.rename(columns={"mean_reward": "reward"}).assign(**ids)
        frame["train_reward"] = [metrics.loc[metrics["step"] <= s, "reward"].tail(5).mean() if s else math.nan
                                 for s in frame["step"]]
        results.append(frame)
    order = ["method", "alpha", "seed", "step"]
    training = pd.concat(training, ignore_index=True)
    results = pd.concat(results, ignore_index=True)
    return (training[order + [c for c in training if c not in order]],
            results[order + [c for c in results if c not in order]])


def per_run(training: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final held-out numbers and how its training reward moved."""
    rows = []
    for (method, alpha, seed), group in results.groupby(["method", "alpha", "seed"]):
        first, last = group.sort_values("step").iloc[0], group.sort_values("step").iloc[-1]
        curve = training[(training["method"] == method) & (training["seed"] == seed)].sort_values("step")
        k = max(1, len(curve) // 4)
        rows.append({"method": method, "alpha": alpha, "seed": seed,
                     "final_accuracy": last["accuracy"], "accuracy_gain": last["accuracy"] - first["accuracy"],
                     "final_reward": last["reward"], "sg_entropy_change": last["sg_semantic_entropy_change"],
                     "rel_ppl_execution": last["rel_ppl_execution"], "rel_ppl_planning": last["rel_ppl_planning"],
                     "train_reward_first_quarter": curve["reward"].head(k).mean(),
                     "train_reward_last_quarter": curve["reward"].tail(k).mean(),
                     "train_reward_gain": curve["reward"].tail(k).mean() - curve["reward"].head(k).mean()})
    return pd.DataFrame(rows)


PROMPT_METRICS = ("final_accuracy", "accuracy_gain")  # per-prompt values exist for these (held-out rollouts)


def prompt_table(root: Path, plan: list[dict]) -> pd.DataFrame | None:
    """Per run and held-out prompt: final accuracy and its gain over step 0 (from each run's rollouts.parquet);
    None when the run folders are not there (the committed tables only)."""
    frames = []
    for run in plan:
        path = root / run["name"] / "reasonlens-eval" / "rollouts.parquet"
        if not path.is_file():
            return None
        rollouts = pd.read_parquet(path, columns=["step", "prompt_id", "correct"])
        rollouts["correct"] = rollouts["correct"].astype(float)
        per_step = rollouts.groupby(["step", "prompt_id"])["correct"].mean().unstack("step")
        first, last = per_step[per_step.columns.min()], per_step[per_step.columns.max()]
        frames.append(pd.DataFrame({"method": label(run), "seed": run["seed"], "prompt_id": per_step.index,
                                    "final_accuracy": last.to_numpy(), "accuracy_gain": (last - first).to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def _groups(prompts: pd.DataFrame | None, method: str, metric: str, seeds) -> list | None:
    """Per seed, the per-prompt values of ``metric`` for ``method`` (None without prompt data)."""
    if prompts is None or metric not in prompts:
        return None
    sub = prompts[prompts["method"] == method]
    return [sub.loc[sub["seed"] == s, metric].to_numpy() for s in seeds]


def summary(runs: pd.DataFrame, prompts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per method and metric: mean over seeds, 95% interval (seeds, and prompts where known), n seeds."""
    rows = []
    for method, group in runs.groupby("method", sort=False):
        for metric in [c for c in runs if c not in ("method", "alpha", "seed")]:
            mean, low, high, n = ci95(group[metric], _groups(prompts, method, metric, group["seed"]))
            rows.append({"method": method, "metric": metric, "mean": mean, "ci95_low": low, "ci95_high": high,
                         "n_seeds": n})
    return pd.DataFrame(rows)


def paired(runs: pd.DataFrame, a: str, b: str, metric: str,
           prompts: pd.DataFrame | None = None) -> tuple[float, float, float, int]:
    """Mean and 95% interval of ``metric`` of method a minus method b, paired by seed and, where known, by
    prompt (a seed's held-out prompts are the same for every method)."""
    left = runs[runs["method"] == a].set_index("seed")[metric]
    right = runs[runs["method"] == b].set_index("seed")[metric]
    differences = (left - right).dropna()
    if prompts is None or metric not in PROMPT_METRICS:
        return ci95(differences)
    keyed = prompts.set_index(["method", "seed", "prompt_id"])[metric]
    groups = [(keyed[a][s] - keyed[b][s]).dropna().to_numpy() for s in differences.index]
    return ci95(differences, groups)


def figures(training: pd.DataFrame, results: pd.DataFrame, runs: pd.DataFrame, folder: Path) -> list[Path]:
    """Mean curves with 95% bands per method, and the alpha sweep."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    main = [m for m in results["method"].unique() if m in ("grpo", "hicra (alpha 0.2)", "entropy-topk")]
    panels = [(results, "accuracy", "held-out accuracy"), (results, "sg_semantic_entropy_change",
              "SG semantic entropy (x step 0)"), (results, "rel_ppl_execution", "execution RelPPL"),
              (training.assign(reward=training.groupby(["method", "seed"])["reward"].transform(
                  lambda r: r.rolling(5, min_periods=1).mean())), "reward", "training reward (5-step mean)")]
    fig = Figure(figsize=(13, 9), layout="constrained")
    for ax, (table, metric, title) in zip(fig.subplots(2, 2).flat, panels):
        for method in main:
            curve = table[table["method"] == method].groupby("step")[metric]
            stats = pd.DataFrame([(s, *ci95(v)[:3]) for s, v in curve], columns=["step", "mean", "low", "high"])
            ax.plot(stats["step"], stats["mean"], marker="o", markersize=3, label=method)
            ax.fill_between(stats["step"], stats["low"], stats["high"], alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("GRPO vs HICRA vs entropy top-k on SmolLM2-135M (mean over seeds, 95% CI)")
    paths = [folder / "curves.png"]
    fig.savefig(paths[0], dpi=110)
    sweep = runs[runs["method"].isin(["grpo"]) | runs["method"].str.startswith("hicra")]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    points = [(a, *ci95(g["final_accuracy"])[:3]) for a, g in sweep.groupby("alpha")]
    for alpha, mean, low, high in points:
        ax.errorbar([alpha], [mean], yerr=[[mean - low], [high - mean]] if low == low else None, fmt="o", capsize=4)
    ax.set_xlabel("alpha (0 = GRPO)")
    ax.set_ylabel("final held-out accuracy")
    ax.set_title("HICRA alpha sweep")
    ax.grid(alpha=0.3)
    paths.append(folder / "alpha_sweep.png")
    fig.savefig(paths[1], dpi=110)
    return paths


def compute_hours(root: Path, plan: list[dict]) -> tuple[float, float]:
    """(training, evaluation) compute in hours, one thread each, summed over runs and over resumed invocations:
    training from each step's logged ``step_time``, evaluation from the seconds each `analyze` printed."""
    train = sum(pd.read_csv(root / r["name"] / "metrics.csv")["step_time"].sum() for r in plan)
    evals = sum(float(s) for r in plan if (log := root / f"{r['name']}.eval.log").is_file()
                for s in re.findall(r"tokens scored, ([0-9.]+) s on ", log.read_text()))
    return train / 3600, evals / 3600


def compare(root: Path, plan: list[dict], figures_folder: Path) -> Path:
    """`reasonlens compare` over the held-out evaluations of GRPO, HICRA (alpha 0.2) and entropy top-k of the
    first seed (all seeds' curves overlaid are unreadable; the means with CIs are in curves.png)."""
    main = [r for r in plan if r["alpha"] in (0.0, 0.2) and r["seed"] == plan[0]["seed"]]
    out = root / "compare"
    args = [REASONLENS, "compare",
            *[str(root / r["name"] / "reasonlens-eval") for r in main], "--out", str(out)]
    for r in main:
        args += ["--label", r["name"]]
    subprocess.run(args, check=True, capture_output=True)
    shutil.copy2(out / "figures" / "compare_dynamics.png", figures_folder / "compare_dynamics.png")
    return out


def base_gram_shares(root: Path) -> pd.Series:
    """Each strategic gram's share of the occurrences in the base model's held-out responses (tag caches)."""
    grams = pd.Series([g for f in root.glob("*/reasonlens-eval/tags/step_000000.parquet")
                       for gs in pd.read_parquet(f, columns=["grams"])["grams"] for g in gs])
    return grams.value_counts(normalize=True)


def _per_method(table: pd.DataFrame, metric: str) -> str:
    rows = table[table["metric"] == metric].set_index("method")
    return "; ".join(f"{m} {_fmt(r['mean'], r['ci95_low'], r['ci95_high'], r['n_seeds'])}" for m, r in rows.iterrows())


def _fmt(mean, low, high, n) -> str:
    return f"{mean:+.3f} (95% CI {low:+.3f} to {high:+.3f}, {n} seeds)" if low == low else f"{mean:+.3f} ({n} seed)"


def _interval_says(low, high) -> str:
    if not (low == low):
        return "too few seeds for an interval"
    return "above zero" if low > 0 else "below zero" if high < 0 else "includes zero: not distinguishable"


def results_md(training, results, runs, table, root: Path, setup: dict, evaluation: dict, wall_s: float,
               hours: tuple[float, float], prompts: pd.DataFrame | None = None) -> str:
    """RESULTS.md: setup, what was and was not reproduced, each sentence computed here."""
    lines = ["# HICRA vs GRPO on SmolLM2-135M-Instruct (CPU)", "",
             f"Study: `make experiment` (experiments/hicra_smollm2/study.py), {len(runs)} runs on a 2-core "
             f"CPU machine, two at a time with one torch thread each. Compute: {hours[0]:.2f} h of training and "
             f"{hours[1]:.2f} h of evaluation (one thread, summed over runs), so {sum(hours) / 2:.2f} h wall two at a "
             f"time; the last invocation of the (resumable) study took {wall_s / 3600:.2f} h. Every number below "
             "comes from `results.csv`, `training.csv` and `summary.csv` next to this file.", "", "## Setup", "",
             f"Training: `{json.dumps(setup)}`.", f"Held-out evaluation (`analyze RUN --eval-task`: problems drawn "
             f"with the run's seed + 1 000 003, training problems removed): `{json.dumps(evaluation)}`.", ""]
    checked = results[["ppl_planning", "ppl_execution"]].dropna()
    above, known = int((checked["ppl_planning"] > checked["ppl_execution"]).sum()), len(checked)
    lines += ["## What was and was not reproduced", "",
              f"- **Planning PPL above execution PPL**: at {above} of {known} evaluated checkpoints "
              f"(paper: always).", *statistics_lines(runs, table, prompts)]
    ratio = results.loc[results["step"] == 0, "planning_ratio"].mean()
    top = ", ".join(f'"{g}" {share:.0%}' for g, share in base_gram_shares(root).head(3).items())
    lines += [f"- **Why HICRA and GRPO can hardly differ here**: planning tokens are {100 * ratio:.1f}% of the base "
              f"model's response tokens on these problems, and the strategic grams found are mostly one word "
              f"({top} of the occurrences), so HICRA's extra credit reaches a few tokens per response; every other "
              "token gets GRPO's advantage."]
    lines += ["", SUMMARY_HEADER, "", SUMMARY_NOTE, "", _markdown(table), "",
              "## Phase detection", "", *_phases(root, runs), "",
              "![curves](figures/curves.png)", "", "![alpha sweep](figures/alpha_sweep.png)", "",
              "`reasonlens compare` over the held-out evaluations of the first seed's GRPO, HICRA and entropy top-k "
              "runs (`runs/study/compare/`):", "",
              "![compare](figures/compare_dynamics.png)", ""]
    return "\n".join(lines)


def statistics_lines(runs: pd.DataFrame, table: pd.DataFrame, prompts: pd.DataFrame | None = None) -> list[str]:
    """The RESULTS.md bullets that state intervals: RelPPL, SG entropy, HICRA minus GRPO, learning, alpha sweep."""
    lines = [f"- **Execution RelPPL falling** (procedural consolidation): final execution RelPPL "
             f"{_summary_line(table, 'rel_ppl_execution', 1.0)}.",
             f"- **SG semantic entropy rising** (the paper's strategic exploration): final / step 0 "
             f"{_summary_line(table, 'sg_entropy_change', 1.0)}; below 1 means the responses converged on fewer "
             "strategic grams (here: onto the worked example's template)."]
    for metric, what in (("sg_entropy_change", "SG semantic entropy change (final / step 0)"),
                         ("final_accuracy", "final held-out accuracy"), ("train_reward_gain", "training reward gain")):
        mean, low, high, n = paired(runs, "hicra (alpha 0.2)", "grpo", metric, prompts)
        by = "seed and prompt" if prompts is not None and metric in PROMPT_METRICS else "seed"
        lines.append(f"- **{what}, HICRA minus GRPO** (paired by {by}): {_fmt(mean, low, high, n)}; the interval "
                     f"{_interval_says(low, high)}.")
    return lines + [f"- **Learning**: training reward gain (last quarter minus first quarter of the steps): "
                    f"{_per_method(table, 'train_reward_gain')}.",
                    f"- **Alpha sweep** (final held-out accuracy; alpha 0 is GRPO): "
                    f"{_per_method(table[table['method'].str.match(r'grpo|hicra')], 'final_accuracy')}."]


SUMMARY_HEADER = "## Summary (mean over seeds, 95% bootstrap interval over seeds and prompts)"
SUMMARY_NOTE = ("Intervals: nested bootstrap (stats.py), seeds resampled and, where the run folders hold per-prompt "
                "results, each seed's held-out prompts; percentile intervals never leave the data's range (accuracy "
                "stays in [0, 1]). From the committed tables alone the prompts are not there, and with 2-3 seeds the "
                "interval is close to the seeds' range: read it as a lower bound on the uncertainty, not a 95% "
                "guarantee.")


def refresh_statistics(folder: Path) -> Path:
    """Recompute summary.csv, the interval bullets and summary table of RESULTS.md, and the figures' bands from
    the committed training.csv and results.csv (seed level: the run folders with per-prompt data are not there)."""
    training, results = pd.read_csv(folder / "training.csv"), pd.read_csv(folder / "results.csv")
    runs = per_run(training, results)
    table = summary(runs)
    table.to_csv(folder / "summary.csv", index=False)
    figures(training, results, runs, folder / "figures")
    lines = (folder / "RESULTS.md").read_text().split("\n")
    for new in statistics_lines(runs, table):
        head = new.split(":")[0].split("(")[0]
        lines = [new if line.startswith(head) else line for line in lines]
    start = next(i for i, line in enumerate(lines) if line.startswith("## Summary (mean over seeds"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    lines[start:end] = [SUMMARY_HEADER, "", SUMMARY_NOTE, "", _markdown(table), ""]
    (folder / "RESULTS.md").write_text("\n".join(lines))
    return folder


def _summary_line(table: pd.DataFrame, metric: str, reference: float) -> str:
    parts = []
    for method, row in table[table["metric"] == metric].set_index("method").iterrows():
        side = ("below" if row["ci95_high"] < reference else "above" if row["ci95_low"] > reference
                else "not distinguishable from") if row["ci95_low"] == row["ci95_low"] else "vs"
        parts.append(f"{method} {row['mean']:.3f} [{row['ci95_low']:.3f}, {row['ci95_high']:.3f}] ({side} {reference:g})")
    return "; ".join(parts)


def _markdown(table: pd.DataFrame) -> str:
    head = "| method | metric | mean | 95% CI | seeds |\n|---|---|---|---|---|"
    rows = [f"| {r.method} | {r.metric} | {r.mean:.3f} | [{r.ci95_low:.3f}, {r.ci95_high:.3f}] | {r.n_seeds} |"
            for r in table.itertuples()]
    return "\n".join([head, *rows])


def _phases(root: Path, runs: pd.DataFrame) -> list[str]:
    """What the detector said on each run's held-out series and on its training curve, with the reason."""
    lines = []
    for kind, sub in (("held-out checkpoints", "reasonlens-eval"), ("training steps", "reasonlens")):
        found = {"consolidation": 0, "exploration": 0}
        reasons: dict[str, int] = {}
        total = 0
        for folder in sorted(p for p in root.iterdir() if (p / sub / "summary.json").is_file()):
            phases = json.loads((folder / sub / "summary.json").read_text())["phases"]
            total += 1
            for name, phase in phases.items():
                found[name] += bool(phase["detected"])
                if not phase["detected"]:
                    reason = re.sub(r"-?\d+(\.\d+)?", "N", phase["reason"].split(":")[0].split("(")[0].strip())
                    key = f"{name}: {reason}"
                    reasons[key] = reasons.get(key, 0) + 1
        if total:
            why = "; ".join(f"{k} ({v})" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
            lines.append(f"- On the {kind} of {total} runs: consolidation detected in {found['consolidation']}, "
                         f"exploration in {found['exploration']}. Not detected because: {why or 'n/a'}.")
    return lines


def summarise(root: Path, plan: list[dict], out: Path, *, setup: dict, evaluation: dict, wall_s: float) -> None:
    """Write training.csv, results.csv, summary.csv, figures/ and RESULTS.md into ``out``."""
    for run in plan:  # each run's own training-curve analysis (reads its logs: no generation)
        if not (root / run["name"] / "reasonlens" / "summary.json").exists():
            subprocess.run([REASONLENS, "analyze", str(root / run["name"]),
                            "--no-report"], check=True, capture_output=True)
    training, results = tables(root, plan)
    runs = per_run(training, results)
    prompts = prompt_table(root, plan)
    table = summary(runs, prompts)
    out.mkdir(parents=True, exist_ok=True)
    training.to_csv(out / "training.csv", index=False)
    results.to_csv(out / "results.csv", index=False)
    table.to_csv(out / "summary.csv", index=False)
    figures(training, results, runs, out / "figures")
    compare(root, plan, out / "figures")
    (out / "RESULTS.md").write_text(results_md(training, results, runs, table, root, setup, evaluation, wall_s,
                                               compute_hours(root, plan), prompts))


if __name__ == "__main__":
    if sys.argv[1:] != ["--from-tables"]:
        sys.exit("usage: summarise.py --from-tables   (the study itself calls summarise() from study.py)")
    print(refresh_statistics(Path(__file__).parent))
