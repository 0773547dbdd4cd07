# Two commands do all set-up on a fresh machine:
#   make demo   napari with the plugin docked and a sample image (creates .venv if missing)
#   make test   lint (ruff) then the test suite (same .venv; under Xvfb when there is no display)
#   make test-fast   the same without the slow tests (real training runs), for quick iterations
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch build this project is tested with; override for another platform, e.g. TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint venv screenshot benchmark clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

test-fast: lint
	$(PY) -m pytest -q -m "not slow"

screenshot: $(STAMP)
	$(PY) scripts/demo.py --screenshot docs/screenshot.png

benchmark: $(STAMP)
	$(PY) benchmarks/bench_inference.py

clean:
	rm -rf $(VENV) .pytest_cache
