"""The export request: every option checked before any work, one rule for options that do not apply."""

import importlib.util
import os

import pytest

from conftest import run_python
from dattn.errors import ConfigError
from dattn.exporting.options import ExportOptions, flag, option_fields
from dattn.exporting.request import check_request

needs_tensorrt_rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt_rtx")


def _refused(weights, message, **options):
    with pytest.raises(ConfigError, match=message) as error:
        check_request(weights, ExportOptions(**options))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("options, message", [
    ({"format": "triton", "instances": 0}, "--instances must be a whole number of at least 1, got 0"),
    ({"format": "triton", "queue_delay_us": -1}, "--queue-delay-us must be a whole number of at least 0, got -1"),
    ({"format": "triton", "name": "a/b"}, "model name 'a/b'"),
    ({"instances": 2}, "--instances applies to --format triton only"),
    ({"queue_delay_us": 10}, "--queue-delay-us applies to --format triton only"),
    ({"name": "other"}, "--name applies to --format triton only"),
    ({"calib_images": 10}, "--calib-images applies to --int8 only"),
    ({"max_map_drop": 2.0}, "--max-map-drop applies to --int8 only"),
    ({"keep_onnx": True}, "--keep-onnx applies to --format engine only"),
    ({"min_imgsz": [640]}, "add --dynamic"),
    ({"dynamic": True, "max_imgsz": [320]}, "--max-imgsz applies to --dynamic engines"),
    ({"batch": 0}, "--batch must be a whole number of at least 1, got 0"),
    ({"batch": True}, "--batch must be a whole number"),
    ({"calib_images": 0, "int8": True, "data": "."}, "--calib-images must be a whole number of at least 1"),
    ({"max_map_drop": float("nan"), "int8": True, "data": "."}, "--max-map-drop must be 0 or more"),
    ({"end2end": "yes"}, "--end2end must be True, False or None"),
    ({"output": "a\nb.onnx"}, "a path with a line break"),
    ({"output": os.devnull}, "is a device, FIFO or socket"),
])
def test_bad_options_are_refused_before_any_work(recipe_weights, options, message):
    _refused(recipe_weights, message, **options)


def test_triton_for_tensorrt_without_tensorrt_names_the_format_asked_for(recipe_weights):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    _refused(recipe_weights, r"^--format triton --target trt needs TensorRT's Python package 'tensorrt'",
             format="triton", target="trt")


@needs_tensorrt_rtx
def test_an_engine_and_its_kept_onnx_cannot_share_a_path(recipe_weights, tmp_path):
    _refused(recipe_weights, "--keep-onnx writes the engine's ONNX to .*x.onnx, which is the --output",
             format="engine", target="trt-rtx", keep_onnx=True, output=str(tmp_path / "x.onnx"))


def test_every_option_has_help_and_a_command_line_flag():
    from dattn.cli import _export_parser

    text = _export_parser("dattn-export").format_help()
    for option in option_fields():
        assert option.metadata["help"] and flag(option.name) in text


def test_a_bad_triton_option_fails_in_the_cli_before_the_model_is_loaded(recipe_weights, tmp_path):
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--format", "triton",
                         "--instances", "0", "--output", str(tmp_path / "repo")], check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["dattn export: error: --instances must be a whole number of at least 1, got 0"]
    assert list(tmp_path.iterdir()) == []


def test_a_data_yaml_with_a_missing_split_is_one_line_and_nothing_else(recipe_weights, recipe_run, tmp_path):
    data = tmp_path / "bad.yaml"
    data.write_text(f"path: {recipe_run / 'data'}\ntrain: images/train\nval: {tmp_path / 'nowhere'}\nnames:\n  0: box\n  1: disc\n")
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--int8", "--data", str(data),
                         "--output", str(tmp_path / "x.onnx")], check=False)
    assert result.returncode == 2 and result.stdout == ""  # ultralytics prints a blank line before its own error
    assert result.stderr.strip().splitlines() == [
        f"dattn export: error: --data {data}: not a usable ultralytics data yaml (Dataset '{data}' images not found, "
        f"missing path '{tmp_path / 'nowhere'}')"]
