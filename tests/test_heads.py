"""Every detection head, from export to detections: YOLO26's NMS-free branch (and its one-to-many branch), RT-DETR's
deformable decoder, YOLOv10, and the tasks dattn exports without serving (segment) or refuses (classify).

The YOLO26 and RT-DETR fixtures detect the generated shapes they were trained on, so the comparisons with
ultralytics' own predictions compare real detections.
"""

from __future__ import annotations

import ast
import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch

import dattn
from conftest import run_python
from dattn.errors import ConfigError, VerificationError
from dattn.runtime.heads import HEADS
from dattn.runtime.postprocess import Detections
from runtime_models import assert_same_detections, sample_images, ultralytics_detections, validation_images

pytestmark = pytest.mark.ultralytics_83
IMGSZ = 160  # for the models built from yamls here; the fixtures are exported at the size they were trained at
CONF = 0.25
needs_tensorrt_rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt_rtx")


def _ultralytics_8_4() -> bool:
    import ultralytics

    return not ultralytics.__version__.startswith("8.3")


def _expected_head(kind: str) -> str:
    if kind == "yolo26":
        return "topk"
    return "rtdetr-topk" if _ultralytics_8_4() else "rtdetr"  # 8.3 writes its queries, 8.4 a top-k


@pytest.fixture(scope="module", params=["yolo26", "rtdetr"])
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def run(kind, request):
    return request.getfixturevalue(f"{kind}_run")


@pytest.fixture(scope="module")
def size(kind):
    from checkpoints import KINDS

    return KINDS[kind].imgsz


@pytest.fixture(scope="module")
def images(run):
    return sample_images() + validation_images(run, 6)


def _pt_model(kind, run):
    from ultralytics import RTDETR, YOLO

    return (RTDETR if kind == "rtdetr" else YOLO)(str(run / "best.pt"))


def _theirs(model, image, kind, size, head_is_end2end=True) -> Detections:
    """ultralytics' predictions on `image`, on the branch the export took."""
    return Detections(*ultralytics_detections(model, image, size, CONF, nms=None if kind == "rtdetr" else not head_is_end2end))


def _assert_same(name, ours, theirs: Detections) -> int:
    return assert_same_detections(name, ours.boxes, ours.scores, ours.class_ids, theirs.boxes, theirs.scores,
                                  theirs.class_ids, CONF, nms=False)


@pytest.mark.parametrize("opset, form", [(17, "native"), (13, "gather"), (17, "plugin")])
def test_the_export_has_the_one_output_of_the_head(export_once, kind, run, size, opset, form):
    # The plugin form is verified through the plugin's CPU reference: RT-DETR's nodes have align_corners 0.
    grid_sample = {"grid_sample": "plugin"} if form == "plugin" else {}
    path, report = export_once(run / "best.pt", f"{kind}-{opset}{'-plugin' if grid_sample else ''}.onnx", imgsz=size,
                               opset=opset, **grid_sample)
    model = onnx.load(str(path))
    head = HEADS[_expected_head(kind)]
    assert len(model.graph.output) == 1, [o.name for o in model.graph.output]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims[head.field_axis] == (6 if head.fixed_width else 4 + 2)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["dattn_head"] == head.name and meta["dattn_grid_sample"] == form
    assert meta["end2end"] == str(kind == "yolo26") and meta["task"] == "detect"
    ops = [n.op_type for n in model.graph.node]
    assert ("GridSample" in ops) == (form == "native") and ("DAttnGridSample" in ops) == (form == "plugin")
    if form == "plugin" and kind == "rtdetr":
        corners = sorted(a.i for n in model.graph.node if n.op_type == "DAttnGridSample" for a in n.attribute
                         if a.name == "align_corners")
        assert corners == [0] * 6 + [1]  # the decoder's six, DAttention's one
    sites = "1 in DAttention" + (", 6 in RT-DETR decoder" if kind == "rtdetr" else "")
    assert f"sampling steps written as {form}: {sites}" in report, report
    assert "verified on" in report and "DIFFER" not in report


def test_jetpack_4_gets_the_nms_free_branch_without_mod_or_grid_sample(export_once, kind, run, size):
    path, report = export_once(run / "best.pt", f"{kind}-trt8.2.onnx", imgsz=size, target="trt8.2")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert not ops & {"Mod", "GridSample", "LayerNormalization", "Einsum"}, ops  # none parses on TensorRT 8.2
    assert "verified on" in report and "DIFFER" not in report


@pytest.mark.parametrize("opset", [17, 13])
def test_detector_gives_ultralytics_detections(export_once, kind, run, size, images, opset):
    from dattn.runtime import Detector

    path, _ = export_once(run / "best.pt", f"{kind}-{opset}.onnx", imgsz=size, opset=opset)
    detector, model = Detector(path, conf=CONF), _pt_model(kind, run)
    assert detector.head.name == _expected_head(kind)
    matched = sum(_assert_same(image.name, detector.predict(str(image)), _theirs(model, image, kind, size)) for image in images)
    assert matched >= len(images), f"only {matched} detections compared: the comparison says little"


def test_dattn_predict_writes_the_detections_and_names_the_head(export_once, kind, run, size, images, tmp_path):
    path, _ = export_once(run / "best.pt", f"{kind}-17.onnx", imgsz=size, opset=17)
    result = run_python(["-m", "dattn.cli", "predict", "--model", str(path), "--source", str(images[-1].parent),
                         "--save-json", str(tmp_path / "found.json"), "--conf", str(CONF)])
    records = json.loads((tmp_path / "found.json").read_text())
    assert len(records) == len(list(images[-1].parent.iterdir())) and sum(len(r["boxes"]) for r in records) > 0
    assert "head" in result.stderr.splitlines()[0] and _expected_head(kind) in result.stderr.splitlines()[0]


def test_stock_ultralytics_runs_the_export(export_once, kind, run, size, images):
    from dattn.runtime import Detector

    path, _ = export_once(run / "best.pt", f"{kind}-17.onnx", imgsz=size, opset=17)
    detector = Detector(path, conf=CONF)
    image = max(images, key=lambda i: len(detector.predict(str(i)).scores))  # the image with the most detections
    code = (f"from ultralytics import {'RTDETR as M' if kind == 'rtdetr' else 'YOLO as M'}\n"
            f"r = M({str(path)!r}).predict({str(image)!r}, imgsz={size}, conf={CONF}, verbose=False)[0].boxes\n"
            "import sys; assert 'dattn' not in sys.modules\n"
            "print(repr((r.xyxy.tolist(), r.conf.tolist(), r.cls.tolist())))\n")
    boxes, scores, classes = ast.literal_eval(run_python(code).stdout.strip().splitlines()[-1])
    theirs = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.array(classes, np.int64))
    assert _assert_same(image.name, detector.predict(str(image)), theirs) > 0


@pytest.mark.parametrize("precision", ["half", "int8"])
def test_reduced_precision_keeps_the_sampling_float_and_passes_its_checks(export_once, int8_export, kind, run, size,
                                                                          precision):
    if precision == "half":
        path, report = export_once(run / "best.pt", f"{kind}-half.onnx", imgsz=size, half=True)
    else:  # the TensorRT flavour, for the Jetson; both flavours' gates on every fixture: test_precision.py
        result = int8_export(kind, "trt")
        if isinstance(result, VerificationError):
            pytest.skip(f"INT8 refused by its gate on this machine (test_precision.py checks how): {result}")
        path, report = result
    model = onnx.load(str(path))
    producer = {out: n for n in model.graph.node for out in n.output}
    samplers = [n for n in model.graph.node if n.op_type == "GridSample"]
    assert len(samplers) == (7 if kind == "rtdetr" else 1)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    for sampler in samplers:  # FP32 sampling, fed by float (not dequantized) coordinates
        assert types.get(sampler.output[0]) == onnx.TensorProto.FLOAT, sampler.name
        assert producer[sampler.input[1]].op_type != "DequantizeLinear"
    # the last verification is of the graph written (an INT8 rescue verifies its attempts before it)
    last = report.rsplit(f"verifying the {'FP16' if precision == 'half' else 'INT8'} ONNX", 1)[1].split("done in")[0]
    assert "verified on" in report and " ok\n" in last and "DIFFER" not in last
    if precision == "int8":
        assert "mAP50-95 / mAP50" in report and any(n.op_type == "QuantizeLinear" for n in model.graph.node)


@needs_tensorrt_rtx
def test_tensorrt_for_rtx_builds_an_engine(export_once, kind, run, size):
    from dattn.runtime.engine_file import read_engine_file

    path, report = export_once(run / "best.pt", f"{kind}.engine", imgsz=size, format="engine", target="trt-rtx",
                               verify=False)
    engine = read_engine_file(path)
    assert engine.module_name == "tensorrt_rtx" and engine.metadata["dattn_head"] == _expected_head(kind)


def test_yolo26_one_to_many_branch_on_request(export_once, yolo26_run):
    from dattn.runtime import Detector

    path, report = export_once(yolo26_run / "best.pt", "yolo26-nms.onnx", imgsz=160, end2end=False)
    assert "NMS in post-processing" in report
    detector = Detector(path, conf=CONF)
    assert detector.head.name == "anchors"
    model = _pt_model("yolo26", yolo26_run)
    images = sample_images() + validation_images(yolo26_run, 4)
    assert sum(_assert_same(i.name, detector.predict(str(i)), _theirs(model, i, "yolo26", 160, head_is_end2end=False))
               for i in images) > 0


def test_the_branch_flag_is_refused_where_there_is_no_choice(recipe_weights, rtdetr_run, tmp_path):
    with pytest.raises(ConfigError, match="--end2end: .* head has no NMS-free one-to-one branch"):
        dattn.export(recipe_weights, imgsz=IMGSZ, end2end=True, output=str(tmp_path / "x.onnx"))
    with pytest.raises(ConfigError, match="RT-DETR, whose decoder predicts without NMS always"):
        dattn.export(rtdetr_run / "best.pt", imgsz=128, end2end=False, output=str(tmp_path / "y.onnx"))
    assert list(tmp_path.iterdir()) == []


def _calibrated(cfg: str, path):
    """A model built from a yaml whose BatchNorm statistics come from images, not from init."""
    from ultralytics import YOLO

    from runtime_models import letterboxed

    yolo = YOLO(cfg)
    batch = torch.from_numpy(np.stack([letterboxed(p, (IMGSZ, IMGSZ)) for p in sample_images()]))
    yolo.model.train()
    with torch.no_grad():
        for _ in range(3):
            yolo.model(batch)
    yolo.model.eval()
    yolo.save(str(path))
    return path


def test_yolov10_exports_end_to_end(tmp_path):
    from dattn.runtime import Detector

    weights = _calibrated("yolov10n.yaml", tmp_path / "v10.pt")
    end2end = {} if not _ultralytics_8_4() else {"end2end": True}  # 8.3's v10Detect predicts end-to-end only
    path = dattn.export(weights, imgsz=IMGSZ, output=str(tmp_path / "v10.onnx"), conf=0.01, **end2end)
    assert Detector(path).head.name == "topk"


def test_a_segment_model_exports_and_says_what_is_not_served(tmp_path):
    weights = _calibrated("yolov8n-seg.yaml", tmp_path / "seg.pt")
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(weights), "--imgsz", str(IMGSZ), "--conf", "0.01",
                         "--output", str(tmp_path / "seg.onnx")])
    assert "a segment model: its masks are exported as they are, but neither verified nor decoded" in result.stderr
    model = onnx.load(str(tmp_path / "seg.onnx"))
    assert len(model.graph.output) == 2  # boxes with mask coefficients, and the prototypes, as ultralytics exports
    predicted = run_python(["-m", "dattn.cli", "predict", "--model", str(tmp_path / "seg.onnx"), "--source",
                            str(sample_images()[0]), "--save-json", str(tmp_path / "seg.json")])
    assert "masks are not served" in predicted.stderr.splitlines()[0]


def test_a_classifier_is_refused_before_anything_is_written(tmp_path):
    from ultralytics import YOLO

    weights = tmp_path / "cls.pt"
    YOLO("yolov8n-cls.yaml").save(str(weights))
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(weights), "--output", str(tmp_path / "c.onnx")],
                        check=False)
    assert result.returncode == 2
    assert "classify model" in result.stderr.strip().splitlines()[-1] and "tracing" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls.pt"]
