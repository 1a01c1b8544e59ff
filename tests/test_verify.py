"""Verification judges boxes in pixels and scores in absolute terms, so it catches wrong scores."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import dattn
from dattn.errors import VerificationError
from dattn.exporting import pipeline
from dattn.exporting import verify as v
from dattn.exporting.verify import TOLERANCES, compare
from dattn.runtime.heads import HEADS

IMGSZ = 160


def _outputs(seed=0, anchors=400, classes=2):
    """A raw YOLO output at 160 px: boxes in pixels, a few confident anchors, many background ones."""
    rng = np.random.default_rng(seed)
    out = np.zeros((1, 4 + classes, anchors), np.float32)
    out[0, :2] = rng.uniform(10, 150, (2, anchors))
    out[0, 2:4] = rng.uniform(8, 60, (2, anchors))
    out[0, 4:] = rng.uniform(0, 0.2, (classes, anchors))
    confident = rng.choice(anchors, 12, replace=False)
    out[0, 4, confident] = rng.uniform(0.55, 0.95, 12)
    return out


def _judge(expected, actual, precision="fp32"):
    batch = np.zeros((1, 3, IMGSZ, IMGSZ), np.float32)
    result, _, _ = compare("case", batch, lambda _: expected, lambda _: actual, HEADS["anchors"], 2, 0.25, TOLERANCES[precision])
    return result


@pytest.mark.parametrize("perturb", [
    lambda y: np.where(y[:, 4:] > 0.5, y[:, 4:] + 0.1, y[:, 4:]),  # confident scores raised by 0.1, boxes untouched
    lambda y: y[:, 4:] * 0.8,  # every score cut by 20 %
    lambda y: y[:, 4:] + 0.05,
])
def test_wrong_scores_fail_even_when_boxes_are_exact(perturb):
    expected = _outputs()
    actual = expected.copy()
    actual[:, 4:] = perturb(expected)
    result = _judge(expected, actual)
    assert result.box_error_px == 0.0
    assert not result.passed, result.line()


def test_a_box_moved_by_a_pixel_fails_in_fp32_and_passes_in_int8():
    expected = _outputs()
    actual = expected.copy()
    actual[0, 0, np.argmax(expected[0, 4])] += 1.0
    assert not _judge(expected, actual, "fp32").passed
    assert _judge(expected, actual, "int8").passed


def test_rounding_noise_passes_and_the_report_does_not_overstate():
    expected = _outputs()
    actual = expected + np.random.default_rng(1).normal(0, 1e-6, expected.shape).astype(np.float32)
    result = _judge(expected, actual)
    assert result.passed, result.line()
    summary = v.summary([result])
    assert "identical" not in summary and "matched" in summary
    assert "identical" in v.summary([_judge(expected, expected.copy())])


def test_a_box_straddling_the_threshold_is_not_a_different_detection():
    expected = _outputs()
    anchor = np.argmax(expected[0, 4])
    expected[0, 4, anchor] = 0.2502
    actual = expected.copy()
    actual[0, 4, anchor] = 0.2498  # within the FP32 score tolerance, on the other side of --conf 0.25
    result = _judge(expected, actual)
    assert sum(d.reference for d in result.detections) != sum(d.candidate for d in result.detections)
    assert result.passed, result.line()


def test_a_different_output_shape_is_a_verification_error():
    expected = _outputs()
    with pytest.raises(VerificationError, match="output shape"):
        _judge(expected, expected[:, :, :-1])


def _scale_scores(model: onnx.ModelProto, scale: float, shift: float) -> onnx.ModelProto:
    """Rewrite the graph so that output = concat(boxes, scores * scale + shift): the class-score branch perturbed."""
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [o + "_raw" if o == out else o for o in node.output]
    consts = {"starts_b": [0], "ends_b": [4], "starts_s": [4], "ends_s": [1 << 30], "axes": [1]}
    for name, value in consts.items():
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    model.graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), "scale"))
    model.graph.initializer.append(numpy_helper.from_array(np.array(shift, np.float32), "shift"))
    model.graph.node.extend([
        helper.make_node("Slice", [out + "_raw", "starts_b", "ends_b", "axes"], ["boxes"]),
        helper.make_node("Slice", [out + "_raw", "starts_s", "ends_s", "axes"], ["scores"]),
        helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], ["shifted"]),
        helper.make_node("Concat", ["boxes", "shifted"], [out], axis=1),
    ])
    return model


@pytest.mark.parametrize("scale, shift", [(0.8, 0.0), (1.0, 0.05)])
def test_an_export_whose_scores_are_perturbed_is_refused(recipe_weights, tmp_path, monkeypatch, scale, shift):
    real = pipeline.float32_onnx
    monkeypatch.setattr(pipeline, "float32_onnx", lambda raw, plan, simplify: _scale_scores(real(raw, plan, simplify), scale, shift))
    with pytest.raises(VerificationError, match="not written") as error:
        dattn.export(recipe_weights, imgsz=IMGSZ, output=tmp_path / "bad.onnx")
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_verify.png"]


def test_the_unperturbed_export_passes(recipe_weights, tmp_path, monkeypatch):
    # The control for the test above: the same rewrite with scale 1 and shift 0 changes nothing.
    real = pipeline.float32_onnx
    monkeypatch.setattr(pipeline, "float32_onnx", lambda raw, plan, simplify: _scale_scores(real(raw, plan, simplify), 1.0, 0.0))
    assert dattn.export(recipe_weights, imgsz=IMGSZ, output=tmp_path / "good.onnx").is_file()
