# mirdl: `make demo` (set up + run the main job on a small synthetic corpus), `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-main
# The demo configs (configs/prepare_demo.yaml, configs/train_demo.yaml) point at demo-out/;
# `make demo SEED=3` trains with another seed (default: the config's).
DEMO := demo-out
WORKERS ?= 2
TFIO_VENV ?= .venv-tfio
TFIO_BIN := $(TFIO_VENV)/bin
TFIO_STAMP := $(TFIO_VENV)/.installed-tfio

.PHONY: venv demo test test-tfio bench clean

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,interop]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mirdl synth-corpus $(DEMO)/corpus --tracks 96 --seed 0 --overwrite
	$(BIN)/mirdl features $(DEMO)/corpus/audio/pluck/t0000.wav --spec configs/logmel.yaml \
		--plot $(DEMO)/t0000-logmel.png --out $(DEMO)/t0000-logmel.npy
	$(BIN)/mirdl prepare --config configs/prepare_demo.yaml --workers $(WORKERS) --overwrite
	$(BIN)/mirdl inspect $(DEMO)/stores/demo --verify --plot $(DEMO)/plots
	$(BIN)/mirdl train --config configs/train_demo.yaml --overwrite $(if $(SEED),--seed $(SEED))
	$(BIN)/mirdl evaluate --model $(DEMO)/runs/fcn --store $(DEMO)/stores/demo --split test --plot
	@echo "demo: corpus, store, run and plots are under $(DEMO)/"

test: $(STAMP)
	$(BIN)/python -m pytest

# tensorflow-io 0.37.1 loads its native ops only with TensorFlow 2.17 and numpy<2: a second venv
# runs the tf.data reader tests there, including the tfio HDF5 path that is skipped in the main venv.
$(TFIO_STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(TFIO_VENV)
	$(TFIO_BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,tfio]'
	touch $(TFIO_STAMP)

test-tfio: $(TFIO_STAMP)
	$(TFIO_BIN)/python -m pytest tests/mirdl_tf/test_data.py tests/mirdl_tf/test_data_readers.py tests/store/test_readers.py \
		tests/store/test_parquet_pages.py

# Every performance comparison side by side in one run (5-12 min on 2 shared cores); the corpus is
# encoded once and cached in bench-cache/ (git-ignored); BENCHMARKS.md's "make bench" section is rewritten.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_all.py --markdown bench-cache/bench.md --update BENCHMARKS.md

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis
