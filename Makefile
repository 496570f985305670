# offload: everything is installed from nothing but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP    := $(BIN)/pip
STAMP  := $(VENV)/.installed
WHEELS := .cache/wheels
RAPIDOCR := rapidocr-onnxruntime==1.4.4
MODEL_FILES := models/text-detector/det.onnx models/text-recognizer/rec.onnx models/text-orientation/cls.onnx

.PHONY: help install models proto demo test test-unit test-integration lint format clean

help:
	@echo "make demo    - set up, build models, start the server, run the client on the sample video"
	@echo "make test    - set up, build models, run the whole test suite"
	@echo "make lint    - ruff + mypy"
	@echo "make proto   - regenerate the committed gRPC stubs"

$(STAMP): client/pyproject.toml server/pyproject.toml requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ./client -e ./server -r requirements-dev.txt
	touch $@

install: $(STAMP)

# The PP-OCR weights come out of the rapidocr wheel, which is downloaded but never installed (DESIGN §6).
$(WHEELS)/.downloaded: | $(STAMP)
	$(PIP) download -q --no-deps $(RAPIDOCR) -d $(WHEELS)
	touch $@

$(MODEL_FILES) &: $(WHEELS)/.downloaded models/*/model.yaml scripts/build_models.py
	$(PY) scripts/build_models.py --wheels $(WHEELS)
	touch $(MODEL_FILES)

models: $(MODEL_FILES)

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

demo: $(STAMP) models
	$(PY) scripts/demo.py

test: $(STAMP) models
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest -m unit

test-integration: $(STAMP) models
	$(BIN)/pytest -m "integration or e2e"

lint: $(STAMP)
	$(BIN)/ruff check client server tests scripts
	$(BIN)/ruff format --check client server tests scripts
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format client server tests scripts
	$(BIN)/ruff check --fix client server tests scripts

clean:
	rm -rf $(VENV) .cache out .pytest_cache .mypy_cache .ruff_cache $(MODEL_FILES)
