# Two commands from a fresh clone: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-pure demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# torch is pinned: this version is a CPU build on the project's machines; a bare
# `torch` would pull a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard src_ext/*.c src_ext/*.h)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -c "import lepton_secagg._kernels as k; print('lepton_secagg kernel backend:', k.BACKEND)"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The whole suite once more with the C extension switched off at import.
test-pure: $(STAMP)
	LEPTON_SECAGG_PUREPYTHON=1 $(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m lepton_secagg demo

bench: $(STAMP)
	$(PY) -m lepton_secagg bench

clean:
	rm -rf $(VENV) build *.egg-info lepton_secagg/_kernels/*.so
