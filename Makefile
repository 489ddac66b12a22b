# Two commands on a fresh clone:  make demo  (set up, search + finetune STS-B, print the score)
#                                 make test  (set up, run every test; CI runs this)
PYTHON ?= python3
VENV ?= .venv
GLUE_DIR ?= $(abspath ../shared/glue)
export GLUE_DIR
BIN := $(VENV)/bin

.PHONY: setup demo test quick
setup: $(VENV)/.installed

# torch pinned to a CPU build (an unpinned one may pull CUDA); betty-ml 0.2.1 declares Python < 3.11
# but is pure Python, so it goes in alone without its declared limits.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps --ignore-requires-python betty-ml==0.2.1
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/agwm search --task stsb --seed 1 --output-dir runs/demo/search --overwrite
	$(BIN)/agwm finetune --task stsb --seed 1 --alphas runs/demo/search/alphas.safetensors \
	    --output-dir runs/demo/finetune --overwrite

test: setup
	$(BIN)/python -m pytest -q

# one thread: the same time alone (1 min 38 s either way), 3.4x less beside a busy grid (docs/development.md)
quick: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -m "not slow"
