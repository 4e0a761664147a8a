# riverguard: `make demo` runs it on a recorded file, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall (and rebuild the compiled hot path) whenever the build inputs change.
# The compiled modules: every .pyx, and every .py with a .pxd beside it (Cython pure-Python mode).
PXDS := $(wildcard plugin/riverguard/*.pxd plugin/riverguard/*/*.pxd)
BUILD_INPUTS := pyproject.toml setup.py $(wildcard plugin/riverguard/*.pyx plugin/riverguard/*/*.pyx) $(PXDS) $(wildcard $(PXDS:.pxd=.py))
STAMP := $(VENV)/.installed-$(shell cat $(BUILD_INPUTS) | cksum | cut -d' ' -f1)

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

test: $(STAMP)
	$(PY) -m pytest -q -rs

bench: $(STAMP)
	$(PY) -m tests.benchmarks

clean:
	rm -rf $(VENV) build plugin/*.egg-info plugin/riverguard/*.c plugin/riverguard/*/*.c plugin/riverguard/*.so plugin/riverguard/*/*.so
