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
# Flower 1.42 pins certifi>=2026.10.19, newer than the registry holds: install
# its requirements (requirements-flower.txt, certifi unpinned), then flwr itself
# without dependencies (see docs/integrations/flower.md).
$(STAMP): $(PY) pyproject.toml setup.py requirements-flower.txt $(wildcard src_ext/*.c src_ext/*.h)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet -r requirements-flower.txt
	$(PY) -m pip install --quiet --no-deps "flwr==1.42.0"
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
