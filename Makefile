# The commands of the README: `make demo`, `make test` (what CI runs) and `make test-fast` (the edit loop).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Ultralytics releases the tests also run against, installed beside the newest 8.4.x that pip picks.
ULTRALYTICS_83 ?= ultralytics==8.3.253
export YOLO_OFFLINE ?= 1
# The Python environment of the test tritonserver's python backend (tests/triton_server.py reads it).
TRITON_ENV := $(VENV)-triton
export DATTN_TRITON_ENV ?= $(abspath $(TRITON_ENV))
# Trained test fixtures, keyed by what determines them (tests/checkpoints.py): trained once, then shared by both
# test passes and by later runs.
export DATTN_TEST_CHECKPOINTS ?= $(abspath .test-checkpoints)

.PHONY: demo test test-fast test-ultralytics-8.3 clean

# An editable install (a plain .pth file): edits to dattn/ are live, only new dependencies need `make` to reinstall.
$(BIN)/dattn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
# A real tritonserver (python backend only) for the Triton tests. Its metadata pins numpy<2; the binary needs
# none of its Python dependencies, so --no-deps keeps the project's numpy.
	$(BIN)/pip install --quiet --no-deps nvidia-pytriton
# The Python that server's python backend embeds: numpy 1.x (with numpy 2 its stub answers with empty tensors),
# OpenCV and ONNX Runtime, and no dattn (the repository carries its own copy of dattn.runtime).
	$(PYTHON) -m venv $(TRITON_ENV)
	$(TRITON_ENV)/bin/pip install --quiet "numpy<2" opencv-python-headless onnxruntime
	touch $@

demo: $(BIN)/dattn
	$(BIN)/dattn demo --workdir demo

# Test runs keep their temporary files in .test-tmp (removed after a passing run), not in /tmp.
TEST_TMP := $(CURDIR)/.test-tmp
PYTEST := TMPDIR=$(TEST_TMP)/system $(BIN)/python -m pytest -q -p no:cacheprovider

test: $(BIN)/dattn $(VENV)-ultralytics-8.3/ultralytics
	$(BIN)/lint-imports
	mkdir -p $(TEST_TMP)/system
	$(PYTEST) --durations=15 --basetemp=$(TEST_TMP)/main
	$(MAKE) --no-print-directory test-ultralytics-8.3
	rm -rf $(TEST_TMP)

# One representative of every module and matrix (pytest -m fast), for the edit loop.
test-fast: $(BIN)/dattn
	mkdir -p $(TEST_TMP)/system
	$(PYTEST) -m fast --basetemp=$(TEST_TMP)/fast
	rm -rf $(TEST_TMP)

# Loading, building and exporting through ultralytics 8.3 (installed into its own folder, put first on the path),
# with the fixtures the main pass trained.
$(VENV)-ultralytics-8.3/ultralytics: | $(BIN)/dattn
	$(BIN)/pip install --quiet --no-deps --target $(VENV)-ultralytics-8.3 $(ULTRALYTICS_83)

test-ultralytics-8.3: $(VENV)-ultralytics-8.3/ultralytics
	mkdir -p $(TEST_TMP)/system
	PYTHONPATH=$(VENV)-ultralytics-8.3 DATTN_EXPECT_ULTRALYTICS=8.3 $(PYTEST) --basetemp=$(TEST_TMP)/ultralytics-8.3 \
		-m ultralytics_83

clean:
	rm -rf $(VENV) $(VENV)-ultralytics-8.3 $(TRITON_ENV) demo $(TEST_TMP) .test-checkpoints
