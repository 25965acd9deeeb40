"""vLLM generation through a ``vllm serve`` subprocess, for when vLLM lives in another environment.

Same contract as `reasonlens.models.vllm_generation.generate_vllm` (see that module for the seeds, the
greedy case and the CPU memory settings): the server is started for one call, asked through its
OpenAI-compatible ``/v1/completions`` endpoint with the prompts as token ids and ``return_token_ids``
(no logprobs), and always stopped, also on an exception or Ctrl-C (a parent-death signal covers a
SIGKILL of the caller). Only the standard library talks to it, so this environment needs no vLLM.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.models.generation import Generation
from reasonlens.models.vllm_generation import (CPU_KV_CACHE_GIB, INSTALL_HINT, _check_args, _command, _fill_timings,
                                               _max_model_len, _request_plan, _to_generations)

SERVED_MODEL_NAME = "reasonlens"


def generate_vllm_server(model_path, prompt_token_ids: list[list[int]], *, samples: int, max_new_tokens: int,
                         temperature: float, top_p: float, seed: int, dtype: str = "float32",
                         stop_token_ids: Iterable[int], tokenizer, memory_fraction: float | None = None,
                         vllm_command: str | Sequence[str] = ("vllm",), port: int | None = None,
                         enforce_eager: bool = False, startup_timeout: float = 900.0,
                         request_timeout: float = 3600.0, concurrency: int = 64,
                         extra_args: Sequence[str] = (), log_path: str | os.PathLike | None = None,
                         progress: Callable[[int], None] | None = None,
                         timings: dict | None = None) -> list[Generation]:
    """Like :func:`generate_vllm`, through a ``vllm serve`` subprocess started and stopped by this call.

    Parameters (beyond :func:`generate_vllm`'s)
    ------------------------------------------
    vllm_command : how to run vLLM's CLI, e.g. ``".venv-vllm/bin/vllm"`` (a string is split like a shell).
    port : on 127.0.0.1; None = a free one.
    startup_timeout : seconds to wait for ``/health`` (loading and compiling the model).
    concurrency : prompts in flight at once (vLLM batches them).
    extra_args : appended to ``vllm serve``'s command line.
    log_path : where the server's output goes (default: a temporary file, deleted after a clean run and
        named in any error).
    progress : called after each prompt with its number of responses.
    timings : as in :func:`generate_vllm` (startup_s = until ``/health`` answers).

    Returns
    -------
    list[Generation], ordered by prompt_index then sample_id.
    """
    stop_ids = {int(t) for t in stop_token_ids}
    prompt_ids = _check_args(prompt_token_ids, samples, max_new_tokens, temperature, top_p, stop_ids)
    port = port or _free_port()
    cmd = [*_command(vllm_command), "serve", str(model_path), "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", SERVED_MODEL_NAME, "--dtype", dtype, "--seed", str(int(seed)),
           "--generation-config", "vllm",
           "--max-model-len", str(_max_model_len(prompt_ids, max_new_tokens))]
    env = dict(os.environ)
    if memory_fraction is not None:
        cmd += ["--gpu-memory-utilization", str(float(memory_fraction))]
    elif not env.get("VLLM_CPU_KVCACHE_SPACE"):
        env["VLLM_CPU_KVCACHE_SPACE"] = str(CPU_KV_CACHE_GIB)  # read by vLLM's CPU build only
    if enforce_eager:
        cmd.append("--enforce-eager")
    cmd += [str(a) for a in extra_args]
    plan = _request_plan(len(prompt_ids), samples, temperature, top_p, seed)
    bodies = [_completion_body(ids, r, max_new_tokens, stop_ids) for ids, r in zip(prompt_ids, plan)]
    clock = {"start": time.perf_counter()}
    try:
        with _VllmServer(cmd, env, port, log_path) as server:
            server.wait_ready(startup_timeout)
            clock["ready"] = time.perf_counter()
            choices = server.complete_all(bodies, timeout=request_timeout, concurrency=concurrency,
                                          progress=None if progress is None else (lambda: progress(samples)))
            clock["done"] = time.perf_counter()
    finally:
        _fill_timings(timings, clock)
    results: list[Generation] = []
    for index, (ids, prompt_choices) in enumerate(zip(prompt_ids, choices)):
        prompt_choices = sorted(prompt_choices, key=lambda c: c["index"])
        outputs = [(_token_ids(c, index), c.get("finish_reason")) for c in prompt_choices]
        results += _to_generations(index, ids, outputs, samples=samples, max_new_tokens=max_new_tokens,
                                   stop_ids=stop_ids, tokenizer=tokenizer)
    return results


def _completion_body(prompt_ids: list[int], request: dict, max_new_tokens: int, stop_ids: set[int]) -> dict:
    """One prompt's /v1/completions request: token ids in, token ids out (``return_token_ids``), no
    logprobs, and every sampling knob neutral so a server default cannot change the draw."""
    body = {"model": SERVED_MODEL_NAME, "prompt": prompt_ids, "n": request["n"], "max_tokens": max_new_tokens,
            "temperature": request["temperature"], "top_p": request["top_p"], "top_k": 0, "min_p": 0.0,
            "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "stop_token_ids": sorted(stop_ids), "return_token_ids": True, "stream": False}
    if request["seed"] is not None:
        body["seed"] = request["seed"]
    return body


def _token_ids(choice: dict, prompt_index: int) -> list[int]:
    ids = choice.get("token_ids")
    if ids is None:
        raise ReasonlensError(f"The vLLM server returned no token_ids for prompt {prompt_index}; it needs "
                              "`return_token_ids` support (vLLM >= 0.10.2): upgrade vLLM in the server's "
                              "environment (`make install-vllm`).")
    return [int(t) for t in ids]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` so the server gets SIGTERM if the process that started it dies without
    stopping it (SIGKILL, a crash). libc's ``prctl`` is looked up here, in the parent: the child only
    calls it (no import or dlopen between fork and exec, where another thread's lock could deadlock)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(1, sigterm)  # PR_SET_PDEATHSIG

    return preexec


class _VllmServer:
    """A ``vllm serve`` subprocess in its own process group; leaving the ``with`` block always stops it."""

    def __init__(self, cmd: list[str], env: dict, port: int, log_path):
        self.cmd, self.env, self.port = cmd, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.keep_log = log_path is not None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="reasonlens-vllm-serve-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "_VllmServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it until stopped
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True, preexec_fn=_parent_death_signal())
        except FileNotFoundError as err:
            if not self.keep_log:
                self.log_path.unlink(missing_ok=True)  # empty: nothing ran
            raise ReasonlensError(f"Cannot run the vLLM command {self.cmd[0]!r} ({err.strerror}): "
                                  f"{INSTALL_HINT}.") from err
        finally:
            log.close()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        if exc_type is None and not self.keep_log:
            self.log_path.unlink(missing_ok=True)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server's process group (the API server and its engine core), SIGKILL after
        ``timeout`` seconds."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> ReasonlensError:
        self.keep_log = True
        return ReasonlensError(f"{what}\nCommand: {' '.join(self.cmd)}\nLast lines of its log ({self.log_path}):\n"
                               f"{self.log_tail()}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise self._failure(f"`vllm serve` exited with code {code} before it was ready.")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise self._failure(f"`vllm serve` was not ready within {timeout:.0f} s (no 200 from "
                                    f"{self.url}/health); raise startup_timeout if the model is just slow to load.")
            time.sleep(0.5)

    def complete(self, body: dict, timeout: float) -> list[dict]:
        request = urllib.request.Request(f"{self.url}/v1/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return json.loads(reply.read())["choices"]
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:2000]
            raise self._failure(f"The vLLM server rejected a request (HTTP {err.code}): {detail}") from err
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            raise self._failure(f"The vLLM server did not answer a request ({err}).") from err

    def complete_all(self, bodies: list[dict], *, timeout: float, concurrency: int,
                     progress: Callable[[], None] | None) -> list[list[dict]]:
        """All requests at once (up to ``concurrency`` in flight) so vLLM batches them; answers in order."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(bodies))))
        futures = [pool.submit(self.complete, body, timeout) for body in bodies]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()  # the first failure raises here
                if progress is not None:
                    progress()
            return [f.result() for f in futures]
        finally:  # on a failure or Ctrl-C: drop the queued requests; stopping the server ends the rest
            pool.shutdown(wait=False, cancel_futures=True)
