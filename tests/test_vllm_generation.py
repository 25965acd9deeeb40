"""vLLM backend: server-mode plumbing against a fake `vllm serve` (always), and real vLLM (CPU build)
in-process and as a server when vllm imports in this interpreter (`make test-vllm` runs them in .venv-vllm).

The real tests start vLLM five times (about 30-80 s each on a busy 2-core machine; torch.compile is
skipped with enforce_eager except in the greedy comparison, which runs vLLM's default path).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.models import vllm_generation as vg
from reasonlens.models import vllm_server as vs

HAS_VLLM = importlib.util.find_spec("vllm") is not None
_VLLM_HERE = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed in this interpreter; "
                                "`make test-vllm` runs these tests in .venv-vllm")


def needs_vllm(test):
    """Runs the real vLLM engine: only where vLLM is installed, and `slow` (make test-fast skips it)."""
    return pytest.mark.slow(_VLLM_HERE(test))
QUESTIONS = ["Tom has 4 apples and buys 9 more. How many apples does he have?", "Add 3 and 4.",
             "Let's break down the problem.", "Hmm, that's not right.", "What is 12 * 3?", "Go"]
N_STOPS = 40  # extra stop ids (of ~400) so that a random model stops in some responses, not all


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- a fake `vllm serve`: the server-mode plumbing without vLLM ------------------------------------

FAKE_VLLM = textwrap.dedent(r'''
    import json, os, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    mode = os.environ.get("FAKE_VLLM_MODE", "ok")
    requests_log = os.environ["FAKE_VLLM_REQUESTS"]
    print(f"fake vllm pid {os.getpid()} argv {sys.argv[1:]}", flush=True)
    if mode == "crash":
        print("boom: this model cannot be served", flush=True)
        sys.exit(3)
    port = int(sys.argv[sys.argv.index("--port") + 1])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            ready = self.path == "/health" and mode != "never-ready"
            self._reply(200 if ready else 503, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with open(requests_log, "a") as f:
                f.write(json.dumps(body) + "\n")
            if mode == "reject":
                return self._reply(400, {"error": {"message": "max_tokens is too large"}})
            stop, first, m = body["stop_token_ids"][0], body["prompt"][0], body["max_tokens"]
            choices = []
            for i in reversed(range(body["n"])):  # out of order on purpose
                ids = [10 + (first + i + k) % 40 for k in range(m)]
                if i % 3 == 0:    # ran to max_tokens
                    tokens, reason = ids, "length"
                elif i % 3 == 1:  # stopped, stop token reported (vLLM's behaviour)
                    tokens, reason = ids[:2] + [stop], "stop"
                else:             # stopped, stop token not reported
                    tokens, reason = ids[:1], "stop"
                choices.append({"index": i, "text": "", "token_ids": tokens, "finish_reason": reason})
            self._reply(200, {"choices": choices})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
''')


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    requests = tmp_path / "requests.jsonl"
    monkeypatch.setenv("FAKE_VLLM_REQUESTS", str(requests))

    def run(mode="ok", **kwargs):
        monkeypatch.setenv("FAKE_VLLM_MODE", mode)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(kwargs.pop("tokenizer_dir"))
        args = dict(samples=3, max_new_tokens=6, temperature=0.7, top_p=0.9, seed=5, stop_token_ids={2, 7},
                    tokenizer=tokenizer, vllm_command=(sys.executable, str(script)),
                    log_path=tmp_path / "serve.log", startup_timeout=30)
        args.update(kwargs)
        return vs.generate_vllm_server("some/model", [[20, 21, 22], [30]], **args)

    def pid():
        return int((tmp_path / "serve.log").read_text().split()[3])

    run.requests = lambda: [json.loads(line) for line in requests.read_text().splitlines()]
    run.pid, run.log = pid, tmp_path / "serve.log"
    return run


def test_server_mode_parses_token_ids_in_order(fake, tiny_tokenizer_dir):
    gens = fake(tokenizer_dir=tiny_tokenizer_dir)
    assert [(g.prompt_index, g.sample_id) for g in gens] == [(p, k) for p in range(2) for k in range(3)]
    assert [g.prompt_token_ids for g in gens] == [[20, 21, 22]] * 3 + [[30]] * 3
    first = [10 + (20 + k) % 40 for k in range(6)]
    assert gens[0].token_ids == first and gens[0].truncated  # ran to max_new_tokens
    assert len(gens[1].token_ids) == 2 and not gens[1].truncated  # stop token cut off
    assert len(gens[2].token_ids) == 1 and not gens[2].truncated  # finish_reason "stop" without the token
    for g in gens:
        text, offsets = g.text, g.offsets
        assert len(offsets) == len(g.token_ids) and text == "".join(text[s:e] for s, e in offsets)
    assert not _alive(fake.pid())  # the server is stopped


def test_server_mode_request_bodies(fake, tiny_tokenizer_dir):
    fake(tokenizer_dir=tiny_tokenizer_dir)
    bodies = sorted(fake.requests(), key=lambda b: b["prompt"])
    assert [b["prompt"] for b in bodies] == [[20, 21, 22], [30]]  # token ids in, one request per prompt
    for index, body in enumerate(bodies):
        assert body["return_token_ids"] is True and "logprobs" not in body  # ids back, no logprobs
        assert body["seed"] == vg.row_seed(5, index, 0) and body["n"] == 3 and body["max_tokens"] == 6
        assert body["stop_token_ids"] == [2, 7] and body["repetition_penalty"] == 1.0 and body["top_k"] == 0
    argv = fake.log.read_text().splitlines()[0]  # the fake logs its command line (log_path keeps the log)
    for arg in ("'serve', 'some/model'", "'--dtype', 'float32'", "'--seed', '5'", "'--generation-config', 'vllm'"):
        assert arg in argv


def test_server_command_may_be_one_string(fake, tiny_tokenizer_dir):
    command = f"{sys.executable} {fake.log.parent / 'fake_vllm.py'}"  # as a CLI's --vllm-command gives it
    assert len(fake(tokenizer_dir=tiny_tokenizer_dir, vllm_command=command)) == 6


def test_server_mode_greedy_sends_n1_and_repeats(fake, tiny_tokenizer_dir):
    gens = fake(tokenizer_dir=tiny_tokenizer_dir, temperature=0)
    assert all(b["n"] == 1 and "seed" not in b and b["temperature"] == 0 for b in fake.requests())
    assert [g.token_ids for g in gens[:3]] == [gens[0].token_ids] * 3


def test_server_start_failure_shows_its_log(fake, tiny_tokenizer_dir):
    with pytest.raises(ReasonlensError, match=r"(?s)exited with code 3 before it was ready.*boom: this model"):
        fake("crash", tokenizer_dir=tiny_tokenizer_dir)
    assert fake.log.exists()  # kept for the user


def test_server_not_ready_times_out_and_is_stopped(fake, tiny_tokenizer_dir):
    with pytest.raises(ReasonlensError, match=r"not ready within 2 s.*raise startup_timeout"):
        fake("never-ready", tokenizer_dir=tiny_tokenizer_dir, startup_timeout=2)
    assert not _alive(fake.pid())


def test_server_rejected_request_raises_and_stops_server(fake, tiny_tokenizer_dir):
    with pytest.raises(ReasonlensError, match=r"HTTP 400.*max_tokens is too large"):
        fake("reject", tokenizer_dir=tiny_tokenizer_dir)
    assert not _alive(fake.pid())


def test_server_is_stopped_on_ctrl_c(fake, tiny_tokenizer_dir):
    def interrupt(_n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fake(tokenizer_dir=tiny_tokenizer_dir, progress=interrupt)
    assert not _alive(fake.pid())


def test_missing_vllm_command_names_the_fix(tiny_tokenizer_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setattr(vs.tempfile, "tempdir", str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    with pytest.raises(ReasonlensError, match=r"make install-vllm.*--vllm-command \.venv-vllm/bin/vllm"):
        vs.generate_vllm_server("m", [[1]], samples=1, max_new_tokens=2, temperature=0, top_p=1, seed=0,
                                stop_token_ids={2}, tokenizer=tokenizer, vllm_command=("/nonexistent/vllm",))
    assert not list(tmp_path.iterdir())  # no empty log left behind


def test_missing_vllm_names_the_fix(monkeypatch, tiny_tokenizer_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, as without the package
    with pytest.raises(ReasonlensError, match=r"vLLM is not installed.*make install-vllm.*--backend vllm-server"):
        vg.generate_vllm("m", [[1]], samples=1, max_new_tokens=2, temperature=0, top_p=1, seed=0,
                         stop_token_ids={2}, tokenizer=None)
    with pytest.raises(ReasonlensError, match="make install-vllm"):
        vg.vllm_info()


@pytest.mark.parametrize("bad, match", [(dict(prompt_token_ids=["text"]), "token-id lists"),
                                        (dict(prompt_token_ids=[[]]), "Prompt 0 is empty"),
                                        (dict(samples=0), "samples=0"), (dict(top_p=0), "top_p=0"),
                                        (dict(stop_token_ids=set()), "stop_token_ids is empty")])
def test_bad_arguments(bad, match):
    args = dict(prompt_token_ids=[[1, 2]], samples=1, max_new_tokens=2, temperature=0, top_p=1, seed=0,
                stop_token_ids={2}, tokenizer=None)
    args.update(bad)
    with pytest.raises(ReasonlensError, match=match):
        vg.generate_vllm("m", args.pop("prompt_token_ids"), **args)


# --- real vLLM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_tiny(tiny_tokenizer_dir, tmp_path_factory):
    """A random 2-layer Llama with head_dim 64 (hidden 128, 2 heads: vLLM's CPU attention rejects the
    suite's head_dim 16), fp32, whose generation config stops on EOS and N_STOPS more ids."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, initializer_range=0.1, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *range(300, 300 + N_STOPS)]
    path = tmp_path_factory.mktemp("vllm-tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                             add_generation_prompt=True) for q in QUESTIONS]
    return path, tokenizer, prompts


def _call(vllm_tiny, fn=None, **kwargs):
    path, tokenizer, prompts = vllm_tiny
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    stops = {tokenizer.eos_token_id, *range(300, 300 + N_STOPS)}  # = stop_token_ids(model.generation_config, tokenizer)
    args = dict(samples=3, max_new_tokens=12, temperature=1.0, top_p=0.95, seed=0, stop_token_ids=stops,
                tokenizer=tokenizer, enforce_eager=True)
    args.update(kwargs)
    return (fn or vg.generate_vllm)(path, ids, **args), ids, stops


@pytest.fixture(scope="module")
def sampled(vllm_tiny):
    """Three in-process LLMs in a row: seed 0, seed 0 again, seed 1."""
    first, ids, stops = _call(vllm_tiny)
    again, _, _ = _call(vllm_tiny)
    other, _, _ = _call(vllm_tiny, seed=1)
    return first, again, other, ids, stops


def _key(gens):
    return [(g.prompt_index, g.sample_id, g.token_ids, g.truncated) for g in gens]


def _sampled_fields(gens):
    """What a backend samples (``generate`` may also fill logprobs while sampling; vLLM leaves them None)."""
    return [(g.prompt_index, g.sample_id, g.prompt_token_ids, g.token_ids, g.text, g.offsets, g.truncated)
            for g in gens]


@needs_vllm
def test_in_process_samples_order_stops_and_text(sampled, vllm_tiny):
    from reasonlens.models.offsets import token_offsets

    gens, _, _, ids, stops = sampled
    tokenizer = vllm_tiny[1]
    assert [(g.prompt_index, g.sample_id) for g in gens] == [(p, k) for p in range(len(ids)) for k in range(3)]
    assert [g.prompt_token_ids for g in gens] == [ids[g.prompt_index] for g in gens]
    for g in gens:
        assert not set(g.token_ids) & stops and len(g.token_ids) <= 12
        assert g.truncated == (len(g.token_ids) == 12)  # a stopped response is shorter than max_new_tokens
        assert (g.text, g.offsets) == token_offsets(tokenizer, g.token_ids)
        assert g.text == tokenizer.decode(g.token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert {g.truncated for g in gens} == {True, False}  # both kinds occur
    distinct = [len({tuple(g.token_ids) for g in gens if g.prompt_index == p}) for p in range(len(ids))]
    assert sum(n > 1 for n in distinct) >= len(ids) - 1  # the K samples of a prompt differ (3 quick stops may not)


@needs_vllm
def test_in_process_same_seed_same_outputs_other_seed_differs(sampled):
    first, again, other, _, _ = sampled
    assert _key(first) == _key(again)  # a second LLM in the same process, same draws
    assert _key(first) != _key(other)
    assert sum(a.token_ids != b.token_ids for a, b in zip(first, other)) > len(first) // 2


@needs_vllm
def test_greedy_equals_transformers_greedy(vllm_tiny):
    """vLLM's default (compiled) path and `generate` pick the same argmax tokens in fp32."""
    from reasonlens.models.generation import generate
    from reasonlens.models.loading import load_model

    path, _, prompts = vllm_tiny
    ours, _, _ = _call(vllm_tiny, temperature=0.0, samples=2, enforce_eager=False, max_new_tokens=16)
    model, tokenizer = load_model(path, device="cpu", dtype="fp32")
    theirs = generate(model, tokenizer, prompts, samples=2, max_new_tokens=16, temperature=0, batch_size=4)
    assert _sampled_fields(ours) == _sampled_fields(theirs)  # ids, truncation, text and offsets
    assert {g.truncated for g in ours} == {True, False}


@needs_vllm
def test_server_mode_equals_in_process(sampled, vllm_tiny):
    """`vllm serve` from this environment's vllm script gives the same draws as the in-process LLM."""
    vllm_script = Path(sys.executable).with_name("vllm")
    if not vllm_script.exists():
        pytest.skip(f"no vllm script beside {sys.executable}")
    served, _, _ = _call(vllm_tiny, fn=vs.generate_vllm_server, vllm_command=(str(vllm_script),))
    assert served == sampled[0]
    assert all(g.logprobs is None and g.entropies is None for g in served)  # never requested
    info = vg.vllm_info((str(vllm_script),))
    assert info["vllm"] == vg.vllm_info()["vllm"] and info["device"] == vg.vllm_info()["device"]


@needs_vllm
def test_vllm_info():
    import vllm

    info = vg.vllm_info()
    assert info["vllm"] == vllm.__version__ and info["device"] in {"cpu", "cuda", "rocm", "xpu", "tpu"}
