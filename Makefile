# Development entry points. `make test` and `make demo` set up everything they
# need on a fresh machine: a virtual environment in .venv with CPU builds.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU builds pinned for development and CI only; the package itself asks for
# ranges. torch 2.13.0 is the CPU wheel that pip finds on this machine's disk.
DEV_PINS := torch==2.13.0 tensorflow-cpu==2.21.0 jax[cpu]==0.10.2 keras==3.15.1
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.jax_cache
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test demo bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet $(DEV_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# One pytest run per backend; a failure in any backend fails the target, but
# every backend still runs so that one report shows all of them.
test: install
	@status=0; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest $(PYTEST_ARGS) || status=1; \
	done; exit $$status

demo: install
	KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(BIN)/dissect demo

bench: install
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache *.egg-info
