"""The generate stage on Ray: one task per checkpoint, across the cores or machines of a cluster.

``analyze --ray`` joins the cluster at ``--ray-address`` (or ``RAY_ADDRESS``) or starts a local one.
Each task runs exactly the single-process code (`generate.rollout_checkpoint`) and writes its step file
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

from reasonlens.analysis.generate import (cached_steps, checkpoint_keys, resolve_runtime, rollout_checkpoint,
                                          series_inputs, write_step)
from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.analysis.record import Record
from reasonlens.errors import ReasonlensError
from reasonlens.progress import progress_bar
from reasonlens.records import read_cached, step_file


def rollout_series_ray(plan: Plan, bar) -> tuple[Inputs, Record]:
    """Like `generate.rollout_series`, with the uncached checkpoints computed as Ray tasks."""
    import ray

    config = plan.config
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             **({} if address else {"num_cpus": os.cpu_count()}))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    cpus = config.threads or 1
    record = Record(runtime=resolve_runtime(config, "cuda" if gpus else "cpu") | {
        "threads": cpus, "gpus_per_task": gpus, "ray_nodes": len(ray.nodes())})
    device, dtype = record.runtime["device"], record.runtime["dtype"]
    keys = checkpoint_keys(plan, device, dtype)
    frames = cached_steps(plan, keys)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_run_checkpoint)
    pending = {task.remote(_portable(plan), ckpt, key, device, dtype, cpus): i
               for i, (ckpt, key, cached) in enumerate(zip(plan.series.checkpoints, keys, frames)) if cached is None}
    checkpoints = plan.series.checkpoints
    overall = bar.add_task(f"checkpoints on Ray ({len(pending)} tasks)", total=len(checkpoints))
    bar.advance(overall, len(checkpoints) - len(pending))
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            record.add_seconds(ray.get(done[0]))
            frames[i] = read_cached(step_file(plan.out, checkpoints[i].step), keys[i])
        except Exception as err:  # noqa: BLE001 - Ray wraps whatever the task raised
            record.skipped.append({"path": str(checkpoints[i].path), "reason": f"Ray task failed: {_cause(err)}"})
        bar.advance(overall)
    if record.skipped and not config.skip_bad:
        lines = "\n".join(f"  - {f['path']}: {f['reason']}" for f in record.skipped)
        raise ReasonlensError(f"{len(record.skipped)} checkpoint(s) failed on Ray (the other steps are finished and "
                              f"kept; rerun to resume, or pass --skip-bad):\n{lines}")
    failed = {f["path"] for f in record.skipped}
    kept = [(c, frame) for c, frame in zip(checkpoints, frames) if str(c.path) not in failed]
    return series_inputs([c for c, _ in kept], [frame for _, frame in kept]), record


def _portable(plan: Plan) -> Plan:
    """The plan without what a worker does not need (and cannot pickle): the lexicon, a text-only tokenizer."""
    return dataclasses.replace(plan, lexicon=None, tokenizer=None)


def _run_checkpoint(plan: Plan, ckpt, key: str, device: str, dtype: str, threads: int) -> dict:
    """On a worker: generate, score and write one checkpoint's step file; return its stage timings."""
    from reasonlens.models.hardware import set_threads

    set_threads(threads)
    record = Record()
    with progress_bar(False) as quiet:
        frame = rollout_checkpoint(ckpt, plan, device, dtype, record, quiet)
    write_step(plan, ckpt, key, frame)
    return record.seconds


def _cause(err: Exception) -> str:
    """The original error of a Ray task failure, in one line."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1][:300] if text else ''}"


