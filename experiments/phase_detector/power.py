"""Power of the phase detector (reasonlens/metrics/phases.py) on curves with a planted boundary.

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/phase_detector/power.py [REPS]   (~2 min on one core)

Curves of n = 8, 16, 32, 64 checkpoints with a known standard error se per point (as the bootstrap
columns give the detector) and noise = se times standardised residuals drawn from our own study's
training curves (experiments/hicra_smollm2/training.csv: each run's sg_semantic_entropy,
entropy_execution, accuracy and mean_length around a 5-point rolling median, divided by the run's
robust sd, clipped at 5 robust sds where a curve jumps): heavier tails than a normal, as real per-step
curves have.
- knee (consolidation): linear fall of ``effect`` se from the first point to a knee at a random index
  in [0.25 n, 0.6 n], flat after;
- onset (exploration): flat to an onset at a random index in [0.25 n, 0.6 n], linear rise of ``effect``
  se to the end;
- effect 0: flat curves; a detection there is a false alarm.
Step 1 picks the defaults: the (min_effect, penalty_scale) with the best mean power at 6 se whose
false-alarm rate stays <= 5% for every n and both kinds. Step 2 measures, at those defaults, the
detection rate, the error of the located step (checkpoints) and how often the step interval holds
the planted step. Writes results.csv, defaults.csv and power.png here; the last line is JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens.metrics.phases import locate_boundary

HERE = Path(__file__).parent
TRAINING = HERE.parent / "hicra_smollm2" / "training.csv"
SIZES = (8, 16, 32, 64)
EFFECTS = (0, 2, 3, 4, 5, 6, 8, 10, 12)
GRID = [(m, p) for m in (3.0, 4.0, 5.0) for p in (1.0, 2.0, 3.0)]
CURVES = ("sg_semantic_entropy", "entropy_execution", "accuracy", "mean_length")
CLIP = 5.0  # robust sds: beyond, a residual is a regime jump of the curve (e.g. SG entropy collapsing to 0), not noise


def study_residuals(path: Path = TRAINING) -> np.ndarray:
    """Standardised residuals of our training curves around a 5-point rolling median (pooled, (M,))."""
    table = pd.read_csv(path)
    pooled = []
    for _, run in table.sort_values("step").groupby(["method", "alpha", "seed"]):
        for column in CURVES:
            y = run[column].to_numpy(dtype=float)
            resid = y - pd.Series(y).rolling(5, center=True, min_periods=3).median().to_numpy()
            scale = 1.4826 * np.median(np.abs(resid - np.median(resid)))
            if scale > 0:
                pooled.append(np.clip(resid / scale, -CLIP, CLIP))
    residuals = np.concatenate(pooled)
    residuals = residuals[np.isfinite(residuals)]
    return residuals / residuals.std()  # unit variance: se is the noise's standard deviation


def planted(kind: str, n: int, effect: float, at: int, noise: np.ndarray) -> np.ndarray:
    """One curve of n points (se = 1) with a knee or onset of ``effect`` se at index ``at``, plus ``noise``."""
    t = np.arange(n, dtype=float)
    shape = (-effect * np.minimum(t, at) / at if kind == "consolidation"
             else effect * np.maximum(t - at, 0.0) / (n - 1 - at))
    return 10.0 + shape + noise


def simulate(kind, n, effect, reps, residuals, rng, **gates) -> dict:
    """Detection rate, located-step error and interval coverage over ``reps`` planted curves."""
    hits, errors, covered = 0, [], 0
    se = np.ones(n)
    for _ in range(reps):
        at = int(rng.integers(int(0.25 * n), int(0.6 * n) + 1))
        y = planted(kind, n, effect, max(at, 1), rng.choice(residuals, n))
        out = locate_boundary(np.arange(n), y, se, kind, **gates)
        if out["detected"]:
            hits += 1
            errors.append(abs(out["step"] - at))
            low, high = out["step_interval"]
            covered += low <= at <= high
    return {"kind": kind, "n": n, "effect_se": effect, "reps": reps, "detection_rate": hits / reps,
            "median_step_error": float(np.median(errors)) if errors else np.nan,
            "p90_step_error": float(np.percentile(errors, 90)) if errors else np.nan,
            "interval_coverage": covered / hits if hits else np.nan}


def choose_defaults(residuals, reps, rng) -> pd.DataFrame:
    """False alarms and power at 6 se of every (min_effect, penalty_scale) of the grid."""
    rows = []
    for min_effect, penalty in GRID:
        gates = dict(min_effect=min_effect, penalty_scale=penalty)
        for kind in ("consolidation", "exploration"):
            for n in SIZES:
                null = simulate(kind, n, 0, reps, residuals, rng, **gates)["detection_rate"]
                power = simulate(kind, n, 6, reps // 2, residuals, rng, **gates)["detection_rate"]
                rows.append({"min_effect": min_effect, "penalty_scale": penalty, "kind": kind, "n": n,
                             "false_alarm_rate": null, "power_at_6se": power})
    return pd.DataFrame(rows)


def figure(results: pd.DataFrame, path: Path) -> None:
    """Detection rate against effect size, one line per n, a panel per kind."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    for ax, kind in zip(fig.subplots(1, 2), ("consolidation", "exploration")):
        for n, sub in results[results["kind"] == kind].groupby("n"):
            ax.plot(sub["effect_se"], sub["detection_rate"], marker="o", label=f"{n} checkpoints")
        ax.axhline(0.8, color="#999999", linewidth=0.8)
        ax.axhline(0.05, color="#999999", linewidth=0.8, linestyle=":")
        ax.set(title=f"{kind} ({'knee' if kind == 'consolidation' else 'onset'})", xlabel="planted effect (standard errors)",
               ylabel="detection rate", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, facecolor="white")


def power_at_80(results: pd.DataFrame) -> dict:
    """Smallest planted effect (se) with detection rate >= 0.8, per kind and n (None if never)."""
    out = {}
    for (kind, n), sub in results[results["effect_se"] > 0].groupby(["kind", "n"]):
        reached = sub[sub["detection_rate"] >= 0.8]["effect_se"]
        out[f"{kind}_n{n}"] = float(reached.min()) if len(reached) else None
    return out


def main(reps: int = 400) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(20261206)
    residuals = study_residuals()
    grid = choose_defaults(residuals, reps, rng)
    worst = grid.groupby(["min_effect", "penalty_scale"]).agg(false_alarm=("false_alarm_rate", "max"),
                                                              power=("power_at_6se", "mean")).reset_index()
    ok = worst[worst["false_alarm"] <= 0.05].sort_values(["power", "min_effect"], ascending=[False, True])
    min_effect, penalty = (float(ok.iloc[0]["min_effect"]), float(ok.iloc[0]["penalty_scale"])) if len(ok) else (5.0, 3.0)
    gates = dict(min_effect=min_effect, penalty_scale=penalty)
    results = pd.DataFrame([simulate(kind, n, effect, reps, residuals, rng, **gates)
                            for kind in ("consolidation", "exploration") for n in SIZES for effect in EFFECTS])
    grid.to_csv(HERE / "defaults.csv", index=False, float_format="%.4g")
    results.to_csv(HERE / "results.csv", index=False, float_format="%.4g")
    figure(results, HERE / "power.png")
    return {"min_effect": min_effect, "penalty_scale": penalty, "reps": reps,
            "residuals": {"n": int(residuals.size), "kurtosis": float(pd.Series(residuals).kurt())},
            "max_false_alarm": float(results[results["effect_se"] == 0]["detection_rate"].max()),
            "effect_for_80pct_power": power_at_80(results), "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    print(json.dumps(main(*map(int, sys.argv[1:]))))
