"""The generate stage on Ray: one task per checkpoint, across the cores or machines of a cluster.

``analyze --ray`` joins the cluster at ``--ray-address`` (or ``RAY_ADDRESS``) or starts a local one.
Each task runs exactly the single-process code (`rollouts.rollout_checkpoint`) and writes its step file
through the same atomic, keyed cache, so a killed run resumes and a finished step is never
recomputed; the driver then reads the step files and finishes as usual. A task is placed on a GPU
when the cluster has one, else it takes ``--threads`` CPUs (default 1). Checkpoints and the output
folder must be on storage every node can read and write, as with any multi-node job. A task that
fails (a bad checkpoint, out of memory) names its checkpoint; the other steps still finish and are
kept, and the run then fails (or, with ``--skip-bad``, goes on without that step, recorded).
Ray Data's vLLM stage (``ray.data.llm``) would spread one checkpoint over several GPUs; it is not used:
one checkpoint per task keeps each step's results identical to the single-process run's.
"""

from __future__ import annotations

import dataclasses
import os

from reasonlens.errors import ReasonlensError
from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.progress import progress_bar


def rollout_series_ray(plan: Plan, bar) -> Inputs:
    """Like `rollouts.rollout_series`, with the uncached checkpoints computed as Ray tasks."""
    import ray

    from reasonlens.analysis.generate import checkpoint_keys, series_inputs

    config = plan.config
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             **({} if address else {"num_cpus": os.cpu_count()}))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    cpus = config.threads or 1
    device = "cuda" if gpus else "cpu"
    keys, device, dtype = checkpoint_keys(plan, device)
    plan.runtime |= {"threads": cpus, "gpus_per_task": gpus, "ray_nodes": len(ray.nodes())}
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_run_checkpoint)
    pending = {task.remote(_portable(plan), ckpt, key, device, dtype, cpus): ckpt
               for ckpt, (key, cached) in zip(plan.series.checkpoints, keys) if cached is None}
    overall = bar.add_task(f"checkpoints on Ray ({len(pending)} tasks)", total=len(plan.series.checkpoints))
    bar.advance(overall, len(plan.series.checkpoints) - len(pending))
    failed = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ckpt = pending.pop(done[0])
        try:
            plan.seconds.update({k: plan.seconds.get(k, 0.0) + v for k, v in ray.get(done[0]).items()})
        except Exception as err:  # noqa: BLE001 - Ray wraps whatever the task raised
            failed.append({"path": str(ckpt.path), "reason": f"Ray task failed: {_cause(err)}"})
        bar.advance(overall)
    if failed and not config.skip_bad:
        lines = "\n".join(f"  - {f['path']}: {f['reason']}" for f in failed)
        raise ReasonlensError(f"{len(failed)} checkpoint(s) failed on Ray (the other steps are finished and kept; "
                              f"rerun to resume, or pass --skip-bad):\n{lines}")
    plan.series.skipped.extend(failed)
    kept = [c for c in plan.series.checkpoints if str(c.path) not in {f["path"] for f in failed}]
    plan.series = dataclasses.replace(plan.series, checkpoints=kept)
    ran = plan.runtime
    inputs = series_inputs(plan, checkpoint_keys(plan, device)[0])
    plan.runtime = ran
    return inputs


def _portable(plan: Plan) -> Plan:
    """The plan without what a worker does not need (and cannot pickle): the parent's timers, the lexicon."""
    return dataclasses.replace(plan, lexicon=None, tokenizer=None, seconds={})


def _run_checkpoint(plan: Plan, ckpt, key: str, device: str, dtype: str, threads: int) -> dict:
    """On a worker: generate, score and write one checkpoint's step file; return its stage timings."""
    from reasonlens.models.hardware import set_threads
    from reasonlens.analysis.generate import rollout_checkpoint, write_step

    set_threads(threads)
    with progress_bar(False) as quiet:
        frame = rollout_checkpoint(ckpt, plan, device, dtype, quiet)
    write_step(plan, ckpt, key, frame)
    return plan.seconds


def _cause(err: Exception) -> str:
    """The original error of a Ray task failure, in one line."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1][:300] if text else ''}"


