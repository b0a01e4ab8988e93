# Two commands do all set-up on a fresh machine:
#   make repro   create .venv if missing, then run the whole DVC pipeline (default params)
#   make test    create .venv if missing, then run the test suite
# make report [BASE=<git rev>] rebuilds reports/ (the last stage) alone, optionally compared with BASE.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Same thread count everywhere: CPU float reductions depend on it (byte-identical metrics).
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2

.PHONY: repro test quickstart venv clean-venv report

repro: $(VENV)/.installed
	dvc repro

# A first result in minutes: the cats-vs-dogs study alone on small params, in quickstart/
# (the committed outputs untouched), then its report (src/xaibench/quickstart.py).
quickstart: $(VENV)/.installed
	$(PY) -m xaibench.quickstart

# The HTML report alone (after make repro); BASE=<git rev> compares every value with that revision.
report: $(VENV)/.installed
	$(PY) stages/report.py $(if $(BASE),--base $(BASE))

# Two workers (pytest-xdist), one test file each at a time: the whole-DAG test runs on one
# while the rest of the suite runs on the other. --no-loadscope-reorder keeps the order of
# tests/conftest.py (the slow files first); xdist's default sends the files with the most
# tests first, which started the 15-minute DAG test after the short files had run.
# One thread per worker: two processes of two torch threads each on two cores ran a ResNet18
# step 4.4x slower than one alone, where one thread each costs 1.7x (benchmarks/bench_oversubscription.py).
# The tests compare runs with each other, never with the committed metrics (made with 2 threads).
test: $(VENV)/.installed
	XAIBENCH_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

venv: $(VENV)/.installed

# lxt goes in with --no-deps: its declared dependencies (accelerate, bitsandbytes, open_clip)
# serve its LLM and CLIP patches; xaibench uses its rules, which need torch and transformers (locked).
# grad-cam (a test-only reference: its ROAD, drop/increase in confidence) likewise: it asks for
# opencv-python-headless beside the locked opencv-python; its other needs (ttach, scipy) are locked.
# Byte-compiled once, on both cores: pip compiles the environment's 23,800 .py files one by one
# (96 s here), compileall -j 0 in 37 s. Not left to Python's first import: where
# PYTHONDONTWRITEBYTECODE is set (as on these machines) nothing would be cached, and every stage
# would compile torch, torchvision and sympy again (loading the params took 14 s instead of 6 s).
# pip itself is pinned too. The lock pins the whole environment, so it installs with
# --no-deps: pip's resolver, which only confirmed the lock, took 17 s of the 91 s here;
# `pip check` then fails the set-up if the lock ever misses a requirement of what it pins.
# The packages' own test suites (18 % of the files, never imported by a stage) are left out.
# `|| true`: torch/testing/_internal/py312_intrinsics.py is Python 3.12 syntax and fails to compile.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile pip==26.3
	$(PY) -m pip install -q --no-compile --no-deps -r requirements.lock
	$(PY) -m pip check
	$(PY) -m pip install -q --no-compile --no-deps lxt==2.1 grad-cam==1.5.7
	$(PY) -m pip install -q --no-compile --no-deps -e .
	$(PY) -m compileall -qq -j 0 -x '/tests?/' $(VENV)/lib src || true
	touch $@

clean-venv:
	rm -rf $(VENV)
