# swapcam: `make demo` and `make test` set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# A checkout keeps its models and engines in the repository's folders; an installed swapcam uses the
# user's cache folder (see README, "Where the models live").
export SWAPCAM_MODELS  ?= $(CURDIR)/models
export SWAPCAM_ENGINES ?= $(CURDIR)/engines

.PHONY: demo test quick setup models lint bench clean docker-deps browser

setup: $(STAMP)

# CPU install (onnxruntime) plus test tools; torch (CPU build) runs the torch-op tests, so it is required:
# without it those tests would all skip and `make test` would pass untested.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev,triton]'
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	# The torch backend's converter. --no-deps: its torchvision/torch requirements would replace the CPU torch
	# above with a CUDA build; swapcam's models need neither torchvision op (see realtime/engines/torch_engine.py).
	$(BIN)/python -m pip install --quiet --no-deps 'onnx2torch==1.5.15'
	# The tritonserver binary (`swapcam serve`, the Triton tests). --no-deps: its numpy<2 pin would downgrade
	# numpy and OpenCV; only its files are used. Linux x86-64 only: elsewhere those tests skip and say why.
	$(BIN)/python -m pip install --quiet --no-deps 'nvidia-pytriton==0.7.0' || echo "no tritonserver: the Triton server tests will be skipped"
	touch $(STAMP)

models: setup
	$(BIN)/swapcam models fetch --samples

# The target clip (Newton, then the Solvay 1927 photo, with pan/zoom/tilt) is rendered once;
# the run swaps Gauss's face into it live (paced at 30 fps) with the status line, into a file.
DEMO_CLIP := out/demo_target.mp4

demo: models $(DEMO_CLIP)
	$(BIN)/swapcam run --face $(SWAPCAM_MODELS)/samples/gauss.png --input $(DEMO_CLIP) \
		--output file:out/demo_swapped.mp4 --duration 20
	@echo "demo: wrote out/demo_swapped.mp4 — to watch live, rerun the command above with --output window"

$(DEMO_CLIP): tools/render_demo_clip.py | models
	$(BIN)/python tools/render_demo_clip.py --output $@

# The container tests (tests/test_docker.py) start their own dockerd and build a debootstrapped base:
# as root on Debian/Ubuntu, install what they need; elsewhere they skip and say why.
DOCKER_TOOLS := dockerd debootstrap docker-compose
docker-deps:
	@missing=; for tool in $(DOCKER_TOOLS); do command -v $$tool > /dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then \
		echo "docker-deps: missing$$missing, not root or no apt-get: the docker tests will be skipped"; \
	else \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap docker-compose; } \
			|| echo "docker-deps: apt-get failed: the docker tests will be skipped (and say why)"; \
	fi

# The panel's browser tests drive Debian's chromium (never a downloaded browser): installed here when root.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -q && apt-get install -y -q chromium; } || \
		echo "chromium not installed: the panel's browser tests will be skipped"; }

test: models docker-deps browser
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

# The edit-test loop: everything but the container, browser and wheel tests (those need minutes); lint after.
quick: models
	$(BIN)/python -m pytest -q -x -m "not docker and not browser" --ignore=tests/test_wheel.py
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check realtime tools tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out build dist .pytest_cache .mypy_cache .ruff_cache
