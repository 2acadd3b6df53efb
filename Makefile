# mirdl: `make demo` (set up + run the main job on a small synthetic corpus), `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-main
DEMO ?= demo-out
WORKERS ?= 2

.PHONY: venv demo test test-tfio bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mirdl synth-corpus $(DEMO)/corpus --tracks 48 --seed 0 --overwrite
	$(BIN)/mirdl features $(DEMO)/corpus/audio/pluck/t0000.wav --spec configs/logmel.yaml \
		--plot $(DEMO)/t0000-logmel.png --out $(DEMO)/t0000-logmel.npy
	@echo "demo: corpus in $(DEMO)/corpus, spectrogram in $(DEMO)/t0000-logmel.png"

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis
