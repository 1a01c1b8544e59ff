# The two commands of the README: `make demo` and `make test`. Both set everything up from scratch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Ultralytics releases the tests also run against, installed beside the newest 8.4.x that pip picks.
ULTRALYTICS_83 ?= ultralytics==8.3.253
export YOLO_OFFLINE ?= 1

.PHONY: demo test test-ultralytics-8.3 clean

$(BIN)/dattn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/dattn
	$(BIN)/dattn demo --workdir demo

test: $(BIN)/dattn test-ultralytics-8.3
	$(BIN)/python -m pytest -q

# Loading, building and exporting through ultralytics 8.3 (installed into its own folder, put first on the path).
$(VENV)-ultralytics-8.3/ultralytics: | $(BIN)/dattn
	$(BIN)/pip install --quiet --no-deps --target $(VENV)-ultralytics-8.3 $(ULTRALYTICS_83)

test-ultralytics-8.3: $(VENV)-ultralytics-8.3/ultralytics
	PYTHONPATH=$(VENV)-ultralytics-8.3 DATTN_EXPECT_ULTRALYTICS=8.3 $(BIN)/python -m pytest -q \
		tests/test_ultralytics_integration.py tests/test_export.py -k "not opset and not dynamic"

clean:
	rm -rf $(VENV) $(VENV)-ultralytics-8.3 demo
