# sci2cl-nf developer entry points. Every target does its own set-up into .venv/.
#   make demo   - train on the bundled real data (CLI) and run the Nextflow test profile
#   make test   - lint + the whole test suite (unit, CLI, real Nextflow runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCKS  := containers/locks/base.txt containers/locks/torch-cuda.txt
DEMO   ?= demo-results

.PHONY: setup nextflow test lint demo demo-cli demo-pipeline container-smoke clean

setup: $(VENV)/.installed

# Pinned, hash-checked dependencies (the same lock files the container images install).
$(VENV)/.installed: pyproject.toml $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(addprefix -r ,$(LOCKS))
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet "pytest==9.2.0" "ruff==0.17.5" "build==1.6.1"
	touch $@

nextflow:
	@bash tests/get_nextflow.sh >/dev/null

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: setup nextflow lint
	$(BIN)/python -m pytest -q

demo: demo-cli demo-pipeline

demo-cli: setup
	mkdir -p $(DEMO)
	$(BIN)/sci2cl run --input tests/data/snare_subset/snare_subset.h5mu --sample snare \
		--output-prefix $(DEMO)/snare
	$(BIN)/sci2cl evaluate --input $(DEMO)/snare.embeddings.parquet \
		--labels tests/data/snare_subset/labels.csv --label-column "cluster (remapped)" \
		--exclude Mis --output $(DEMO)/snare.metrics.json

demo-pipeline: setup nextflow
	PATH="$(CURDIR)/$(BIN):$$PATH" "$$(bash tests/get_nextflow.sh)" run . -profile test \
		--outdir $(DEMO)/pipeline

container-smoke:
	bash tests/container_smoke.sh

clean:
	rm -rf $(DEMO) work .nextflow .nextflow.log* .pytest_cache

# Benchmarks vs peers (docs/benchmarks.md). Peers live in their own venv so they never
# constrain the product's dependencies (scvi-tools 1.4.2 / muon 0.1.9: Python 3.11).
BENCH_VENV ?= .venv-bench
BENCH_ARGS ?= --data ../shared/data --out benchmarks/results --threads 1

.PHONY: bench bench-setup bench-scaling bench-speed bench-loader bench-scaling-10x

bench-setup: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: benchmarks/requirements-peers.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r benchmarks/requirements-peers.txt
	touch $@

bench: setup bench-setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-scaling: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS) --scaling

# sci2cl and MultiVI (20 epochs) trained at the same time: the speed ratio on a drifting machine
bench-speed: setup bench-setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS) --speed-check 20

# Loader vs model step at 10x Multiome shape (one thread); writes its section of docs/benchmarks.md
bench-loader: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.loader --out benchmarks/results \
		--doc docs/benchmarks.md

# One full CPU epoch at 10x Multiome density per size, peak RSS each (1M cells: hours)
SCALING_10X_CELLS ?= 10000,100000,1000000
bench-scaling-10x: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.scaling_10x --out benchmarks/results \
		--cells $(SCALING_10X_CELLS) --doc docs/benchmarks.md

# Deep-ATAC titration (issue 12): peers train once, sci2cl rows at every depth and seed 0-2;
# rewrites only its block of docs/benchmarks.md
.PHONY: bench-titration
bench-titration: setup bench-setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS) --titration

# nf-core lint (nf-core tools in their own venv). Offline it needs a local clone of
# nf-core/modules: make lint-nfcore NFCORE_MODULES=/path/to/nf-core-modules
NFCORE_VENV ?= .venv-nfcore
NFCORE_MODULES ?=

.PHONY: lint-nfcore

$(NFCORE_VENV)/.installed:
	$(PYTHON) -m venv $(NFCORE_VENV)
	$(NFCORE_VENV)/bin/pip install --quiet "nf-core==4.2.1"
	touch $@

lint-nfcore: $(NFCORE_VENV)/.installed nextflow
	NFCORE="$(CURDIR)/$(NFCORE_VENV)/bin/nf-core" NFCORE_MODULES="$(NFCORE_MODULES)" \
		bash tests/lint_nfcore.sh
