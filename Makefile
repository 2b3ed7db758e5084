# neo — one file to set up, train, test, benchmark and lint.
# Every target that runs neo depends on `setup`, so a fresh clone needs only `make train` / `make test`.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.neo-installed
# The pip cap: never upgrade pip past it; torch 2.14.1 + torchvision 0.29.1 resolve from this machine's disk with it.
PIP_CAP := pip<25

.PHONY: setup train test test-slurm test-gpu bench speed-guard lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(PIP_CAP)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: synthetic 16:9 dataset (made once), CPU demo recipe, summary table at the end.
# ckpt_path=auto: run again, it continues an interrupted demo, or shows the finished one's summary (exit 0).
train: setup
	$(BIN)/neo-train experiment=cpu_demo ckpt_path=auto

# The suite in TEST_WORKERS processes (pytest-xdist, each file's tests in one process; 0 runs it in this process,
# ~12 min instead of ~7 on 2 cores), the 20 slowest listed.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

# The SLURM suite (tests/slurm, marker `slurm`, left out of `make test`): a real single-node scheduler
# started by the tests; installs slurm-wlm + munge with apt-get if missing (needs root, as CI is).
test-slurm: setup
	$(BIN)/python -m pytest -q -m slurm tests/slurm

# The GPU smoke path (tests/gpu, marker `gpu`, left out of `make test`): the seed recipe at 1080p for 30 steps,
# neo-bench train at 1080p in bf16/fp16/fp32, the demo on the GPU then ONNX export, DDP with one process, the
# host synchronisations of one R50 step. Prints its figures (-s); skipped with the reason where CUDA is absent.
test-gpu: setup
	$(BIN)/python -m pytest -q -s -m gpu tests/gpu --timeout=1800

bench: setup
	$(BIN)/neo-bench all

# The demo's own configuration through neo-train vs neo-bench train in one job (2-3.5 min on 2 shared cores): fails when
# neo-train is < 0.7x the bench's images/s or the chosen precision is > 20 % slower than the other (ratios only).
speed-guard: setup
	$(BIN)/neo-bench guard

lint: setup
	$(BIN)/ruff check neo tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
