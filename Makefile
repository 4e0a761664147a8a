# riverguard: `make demo` runs it on a recorded file, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall (and rebuild the compiled hot path) whenever the build inputs change.
# The compiled modules: every .pyx, and every .py with a .pxd beside it (Cython pure-Python mode).
PXDS := $(wildcard plugin/riverguard/*.pxd plugin/riverguard/*/*.pxd)
BUILD_INPUTS := pyproject.toml setup.py plugin/riverguard/_version.py $(wildcard plugin/riverguard/*.pyx plugin/riverguard/*/*.pyx) $(PXDS) $(wildcard $(PXDS:.pxd=.py))
STAMP := $(VENV)/.installed-$(shell cat $(BUILD_INPUTS) | cksum | cut -d' ' -f1)
# Python reads compiled bytecode (__pycache__) even where PYTHONDONTWRITEBYTECODE keeps it from writing any,
# as here (and, by its timings, on CI): without it each riverguard process the tests start compiles its modules again
# (0.2 of its 0.4 s start; test_config and test_monitor: 121 s -> 93 s). Quick when nothing changed.
PYC := $(PY) -m compileall -q -j 0 plugin/riverguard

.PHONY: demo test bench install clean

$(STAMP): $(BUILD_INPUTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" "Cython>=3.0"
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) tests/data/demo.py

# One pytest worker per CPU this process may use (nproc: its affinity; at most 4), each test file on one worker
# (its module fixtures made once): on 2 CPUs the suite took 1660 s in one process, 965 s in two. Not -n auto:
# with psutil installed it counts physical cores, 1 on a VM of 2 vCPUs as hyperthreads. WORKERS=N sets it.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: $(STAMP)
	$(PYC)
	$(PY) -m pytest -q -rs -n $(WORKERS) --dist loadfile

bench: $(STAMP)
	$(PYC)
	$(PY) -m tests.benchmarks

clean:
	rm -rf $(VENV) build plugin/*.egg-info plugin/riverguard/*.c plugin/riverguard/*/*.c plugin/riverguard/*.so plugin/riverguard/*/*.so
