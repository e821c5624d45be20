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
	# The torch backend's converter. --no-deps: its torchvision/torch requirements would replace the CPU torch
	# above with a CUDA build; swapcam's models need neither torchvision op (see realtime/engines/torch_engine.py).
	$(BIN)/python -m pip install --quiet --no-deps 'onnx2torch==1.5.15' || echo "onnx2torch not installed: torch-backend tests will be skipped"
	touch $(STAMP)

models: setup
	$(BIN)/swapcam models fetch --samples

# The target clip (Newton, then the Solvay 1927 photo, with pan/zoom/tilt) is rendered once;
# the run swaps Gauss's face into it live (paced at 30 fps) with the status line, into a file.
DEMO_CLIP := out/demo_target.mp4

demo: models $(DEMO_CLIP)
	$(BIN)/swapcam run --face models/samples/gauss.png --input $(DEMO_CLIP) \
		--output file:out/demo_swapped.mp4 --duration 20
	@echo "demo: wrote out/demo_swapped.mp4 — to watch live, rerun the command above with --output window"

$(DEMO_CLIP): tools/render_demo_clip.py | models
	$(BIN)/python tools/render_demo_clip.py --output $@

test: models
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
