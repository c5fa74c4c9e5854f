# Every target sets up .venv itself on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test test-fast check bench bench-dvc-env bench-mlflow-env clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, from this machine's CPU build: an unpinned torch pulls a CUDA build
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow"

check: $(STAMP)
	$(BIN)/ruff check shipyard tests benchmarks examples
	$(BIN)/ruff format --check shipyard tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# DVC for the side-by-side data benchmark, in its own environment (make bench never
# installs it): benchmarks/run.py --only data --only dvc
bench-dvc-env:
	@test -x .bench-venv-dvc/bin/python || $(PYTHON) -m venv .bench-venv-dvc
	.bench-venv-dvc/bin/python -m pip install -q --disable-pip-version-check dvc

# MLflow beside Shipyard for bench_models' and bench_serve's peers (same scikit-learn,
# onnx and onnxruntime as the suite: bench_serve serves the MLP's ONNX graph with mlflow.onnx).
bench-mlflow-env:
	@test -x .bench-venv-mlflow/bin/python || $(PYTHON) -m venv .bench-venv-mlflow
	.bench-venv-mlflow/bin/python -m pip install -q --disable-pip-version-check mlflow scikit-learn==1.9.1 pandas onnx==1.23.2 onnxruntime==1.32.0

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
