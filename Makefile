# The two commands of the README: `make demo` and `make test`. Both set everything up from scratch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Ultralytics releases the tests also run against, installed beside the newest 8.4.x that pip picks.
ULTRALYTICS_83 ?= ultralytics==8.3.253
export YOLO_OFFLINE ?= 1
# The Python environment of the test tritonserver's python backend (tests/triton_server.py reads it).
TRITON_ENV := $(VENV)-triton
export DATTN_TRITON_ENV ?= $(abspath $(TRITON_ENV))

.PHONY: demo test test-ultralytics-8.3 clean

# A regular (not editable) install: every editable mode of setuptools prints a warning on each install. The tests
# import the checkout (pytest runs from here), and a change to the package's files reinstalls it.
$(BIN)/dattn: pyproject.toml $(shell git ls-files dattn plugins 2>/dev/null)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[dev]"
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

test: $(BIN)/dattn test-ultralytics-8.3
	$(BIN)/lint-imports
	mkdir -p $(TEST_TMP)/system
	$(PYTEST) --basetemp=$(TEST_TMP)/main
	rm -rf $(TEST_TMP)

# Loading, building and exporting through ultralytics 8.3 (installed into its own folder, put first on the path).
$(VENV)-ultralytics-8.3/ultralytics: | $(BIN)/dattn
	$(BIN)/pip install --quiet --no-deps --target $(VENV)-ultralytics-8.3 $(ULTRALYTICS_83)

test-ultralytics-8.3: $(VENV)-ultralytics-8.3/ultralytics
	mkdir -p $(TEST_TMP)/system
	PYTHONPATH=$(VENV)-ultralytics-8.3 DATTN_EXPECT_ULTRALYTICS=8.3 $(PYTEST) --basetemp=$(TEST_TMP)/ultralytics-8.3 \
		tests/test_ultralytics_integration.py tests/test_export.py -k "not opset and not dynamic"

clean:
	rm -rf $(VENV) $(VENV)-ultralytics-8.3 $(TRITON_ENV) demo $(TEST_TMP)
