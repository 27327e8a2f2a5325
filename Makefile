# rimclf: `make demo` runs the main job, `make test` runs the test suite, `make docs` builds
# the documentation into docs/_build/html.
# Both create .venv when missing and install everything into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.rimclf-installed
DEMO_DIR ?= demo_output
BENCH_DIR ?= bench_output

.PHONY: install test test-fast demo bench docs gpu-check clean

install: $(STAMP)

# torch first (a pinned CPU build: an unpinned torch pulls a multi-GB CUDA build);
# pyradiomics 3.0.1 next, built against the installed numpy without build isolation
# (its 3.1.0 source package is broken; it is the extra rimclf[radiomics], which has no wheel);
# then rimclf itself with the dev extra (which includes radiomics).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet numpy setuptools wheel
	$(PIP) install --quiet --no-build-isolation "pyradiomics==3.0.1"
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# the fast subset for development: every test not marked slow (pyproject.toml)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/rimclf demo --out $(DEMO_DIR) --force

# Any warning fails the build (-W); --keep-going reports them all; -E rereads every page (autodoc
# does not notice changed docstrings otherwise). Offline: nothing is fetched.
docs: $(STAMP)
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
	@echo "documentation: docs/_build/html/index.html"

bench: $(STAMP)
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_imbalance.py --quick --out $(BENCH_DIR)/imbalance-quick --force
	$(PY) benchmarks/bench_ablation.py --quick --out $(BENCH_DIR)/ablation-quick --force

# The GPU check of issue #13 (<= 5 minutes on one GPU): the CUDA tests, then the GPU benchmark's
# table (estimator vs bare torch loop at three settings, peak memory, concurrent fits). Uses
# .venv by default; on a GPU machine with its own CUDA build of torch, name that Python and
# nothing is installed or downloaded: make gpu-check PY=python3 (it needs torch, numpy,
# scikit-learn, skorch and pytest; not pyradiomics).
GPU_CHECK_ENV := PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}
GPU_CONCURRENT ?= 4

gpu-check: $(if $(filter $(VENV)/bin/python,$(PY)),$(STAMP))
	@$(GPU_CHECK_ENV) $(PY) benchmarks/bench_training.py --device cuda --check
	$(GPU_CHECK_ENV) $(PY) -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py
	$(GPU_CHECK_ENV) $(PY) benchmarks/bench_training.py --device cuda --quick --concurrent $(GPU_CONCURRENT)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache docs/_build
