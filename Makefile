# Two commands from a fresh clone: `make demo` and `make test` (see README.md).
# One stamp per install level: `make demo` installs the core only (numpy, msgpack,
# pynacl, pycryptodome and the C extension); `make test` adds the rest on top, also
# after a `make demo`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.installed-core
STAMP  := $(VENV)/.installed

.PHONY: install test test-pure demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

$(CORE): $(PY) pyproject.toml setup.py $(wildcard src_ext/*.c src_ext/*.h)
	$(PY) -m pip install --quiet -e .
	$(PY) -c "import lepton_secagg._kernels as k; print('lepton_secagg kernel backend:', k.BACKEND)"
	touch $(CORE)

# torch is pinned: this version is a CPU build on the project's machines; a bare
# `torch` would pull a multi-GB CUDA build.
# Flower 1.42 pins certifi>=2026.10.19, newer than the registry holds: install
# its requirements (requirements-flower.txt, certifi unpinned), then flwr itself
# without dependencies (see docs/integrations/flower.md).
$(STAMP): $(CORE) requirements-flower.txt
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet -r requirements-flower.txt
	$(PY) -m pip install --quiet --no-deps "flwr==1.42.0"
	$(PY) -c "import lepton_secagg._kernels as k; print('lepton_secagg kernel backend:', k.BACKEND)"
	touch $(STAMP)

install: $(STAMP)

# mypy --strict on the package and examples/ (configured in pyproject.toml), then the suite.
test: $(STAMP)
	$(PY) -m mypy
	$(PY) -m pytest -q

# The whole suite once more with the C extension switched off at import.
test-pure: $(STAMP)
	LEPTON_SECAGG_PUREPYTHON=1 $(PY) -m pytest -q -p no:cacheprovider

demo: $(CORE)
	$(PY) -m lepton_secagg demo

bench: $(STAMP)
	$(PY) -m lepton_secagg bench

clean:
	rm -rf $(VENV) build *.egg-info lepton_secagg/_kernels/*.so
