# swapcam: `make demo` and `make test` set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup models lint bench clean

setup: $(STAMP)

# CPU install (onnxruntime) plus test tools; torch (CPU build) is only for the torch-op tests.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	$(BIN)/python -m pip install --quiet 'torch==2.13.0' || echo "torch not installed: torch-op tests will be skipped"
	touch $(STAMP)

models: setup
	$(BIN)/swapcam models fetch --samples

demo: models
	$(BIN)/python tools/render_demo_clip.py --output out/demo_target.mp4
	$(BIN)/swapcam run --face models/samples/gauss.png --input out/demo_target.mp4 \
		--output file:out/demo_swapped.mp4 --duration 20

test: models
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
