"""dattn.export / dattn-export: every exporter, opset and grid-sample form, dynamic shapes, metadata, bad input."""

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import dattn
from conftest import run_python
from dattn.errors import ConfigError
from dattn.exporting import pipeline
from dattn.exporting import verify as v
from dattn.exporting.passes import find_float64
from dattn.exporting.targets import EXPORTERS, plan_export
from dattn.exporting.torch_onnx import export_onnx, prepare_for_export
from dattn.runtime.heads import HEADS
from runtime_models import letterboxed

IMGSZ = 160
FORMS_BY_OPSET = [(op, form) for op in (11, 13, 16, 17, 18, 20, 21) for form in ("native", "gather", "plugin") if form != "native" or op >= 16]
MATRIX = [(exporter, op, form) for exporter in EXPORTERS for op, form in FORMS_BY_OPSET]
by_exporter = pytest.mark.parametrize("exporter", EXPORTERS)


@pytest.fixture(scope="module")
def torch_model(recipe_weights):
    return prepare_for_export(dattn.load(recipe_weights).model, dynamic=True)[0]


@pytest.fixture(scope="module")
def conf(torch_model):
    """A threshold that keeps at least 10 candidate boxes on each sample image: a tiny model's scores are low."""
    images = np.stack([letterboxed(p, (IMGSZ, IMGSZ)) for p in v.sample_image_paths()])
    scores = v.torch_runner(torch_model)(images)[:, 4:].max(axis=1)
    return float(np.sort(scores, axis=1)[:, -10].min())


def _check_against_torch(onnx_path, torch_model, conf, cases):
    """ORT runs the file; boxes and scores within the FP32 tolerances; the same detections after NMS."""
    runner = v.onnxruntime_runner(onnx_path)
    reference = v.torch_runner(torch_model)
    for name, batch in cases:
        result, _, _ = v.compare(name, batch, reference, runner, HEADS["anchors"], 2, conf, v.TOLERANCES["fp32"])
        assert result.passed, result.line()
        assert name == "random" or sum(d.matched for d in result.detections) > 0, f"{name}: no boxes to compare at conf {conf}"


def _image_cases(size=(IMGSZ, IMGSZ)):
    return [(p.name, letterboxed(p, size)[None]) for p in v.sample_image_paths()] + [("random", v.random_batch(1, size))]


@pytest.fixture(scope="module")
def traced(recipe_weights):
    """trace(exporter, opset) -> the raw ONNX, traced once: the grid-sample forms are passes on the same trace."""
    loaded, cache = dattn.load(recipe_weights).model, {}

    def trace(exporter, opset):
        if (exporter, opset) not in cache:  # a model of its own: an exporter leaves state on the head it traced
            model, _ = prepare_for_export(loaded, dynamic=False)
            cache[exporter, opset] = export_onnx(model, torch.zeros(1, 3, IMGSZ, IMGSZ), opset, False, exporter)
        return cache[exporter, opset]

    return trace


@pytest.mark.parametrize("exporter, opset, form", MATRIX, ids=[f"{e}-opset{o}-{f}" for e, o, f in MATRIX])
def test_every_opset_and_form_agrees_with_pytorch(traced, torch_model, conf, tmp_path, exporter, opset, form):
    model = pipeline.float32_onnx(traced(exporter, opset), plan_export("ort", opset, form), simplify=True)
    ops = {n.op_type for n in model.graph.node}
    assert [i.version for i in model.opset_import if i.domain in ("", "ai.onnx")] == [opset]
    assert model.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert "Einsum" not in ops and find_float64(model) == []
    assert ("GridSample" in ops) == (form == "native") and ("DAttnGridSample" in ops) == (form == "plugin")
    onnx.save(model, str(tmp_path / "m.onnx"))
    _check_against_torch(tmp_path / "m.onnx", torch_model, conf, _image_cases())


@pytest.mark.parametrize("opset, form", [(17, "native"), (13, "gather"), (16, "plugin")])
def test_the_export_writes_the_form_its_metadata_and_its_picture(recipe_weights, export_once, conf, opset, form):
    out, report = export_once(recipe_weights, f"recipe-{opset}-{form}.onnx", imgsz=IMGSZ, opset=opset, grid_sample=form,
                              conf=conf)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["dattn_grid_sample"] == form and meta["dattn_opset"] == str(opset) and meta["imgsz"] == str([IMGSZ, IMGSZ])
    assert meta["dattn_head"] == "anchors" and meta["end2end"] == "False"
    assert out.with_name(f"recipe-{opset}-{form}_verify.png").is_file() and "verified on 3 inputs" in report


@by_exporter
@pytest.mark.parametrize("opset, form", [(17, "native"), (13, "gather")])
def test_dynamic_export_agrees_at_other_sizes_and_batches(recipe_weights, torch_model, conf, tmp_path, opset, form, exporter):
    out = dattn.export(recipe_weights, imgsz=640, dynamic=True, opset=opset, grid_sample=form, output=tmp_path / "d.onnx", conf=conf,
                       verify=False, exporter=exporter)
    model = onnx.load(str(out))
    input_dims, output_dims = (value.type.tensor_type.shape.dim for value in (model.graph.input[0], model.graph.output[0]))
    assert [input_dims[i].dim_param for i in (0, 2, 3)] == ["batch", "height", "width"] and input_dims[1].dim_value == 3
    assert [output_dims[i].dim_param for i in (0, 2)] == ["batch", "anchors"]
    cases = [(f"b{b}-{s}", np.concatenate([letterboxed(p, (s, s))[None] for p in v.sample_image_paths()] * 2)[:b])
             for b in (1, 2, 3) for s in (320, 480, 640)]
    _check_against_torch(out, torch_model, conf, cases)


@by_exporter
def test_the_recipe_class_would_fail_the_dynamic_check(recipe_weights, torch_model, tmp_path, exporter):
    # The check above can fail: the recipe's own forward, exported the same way, moves boxes (TorchScript
    # bakes its 640-px reference grid in) or cannot run at another size (dynamo keeps a 640-px broadcast).
    from dattn.exporting.torch_onnx import export_onnx
    from recipe import as_recipe_objects

    recipe_model = as_recipe_objects(prepare_for_export(dattn.load(recipe_weights).model, dynamic=True)[0])
    path = tmp_path / "recipe.onnx"
    path.write_bytes(export_onnx(recipe_model, torch.zeros(1, 3, 640, 640), 17, dynamic=True, exporter=exporter).SerializeToString())
    batch = letterboxed(v.sample_image_paths()[0], (320, 320))[None]
    try:
        error = np.abs(v.onnxruntime_runner(path)(batch) - v.torch_runner(torch_model)(batch))[:, :4].max()
    except ort.capi.onnxruntime_pybind11_state.Fail:
        error = math.inf
    assert error > 1.0, f"boxes moved by only {error:.3g} px"


@pytest.mark.ultralytics_83
@by_exporter
def test_cli_prints_progress_summary_and_the_path_last(recipe_weights, tmp_path, exporter):
    out = tmp_path / "cli.onnx"
    # PYTHONWARNINGS=default shows the deprecation notices Python hides outside __main__: none may reach the console.
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--imgsz", str(IMGSZ), "--output", str(out),
                         "--exporter", exporter], env={"PYTHONWARNINGS": "default"})
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert "chose grid-sample native" in result.stderr and "verified on" in result.stderr and f"{exporter} exporter" in result.stderr
    assert "Warning" not in result.stderr and "deprecated" not in result.stderr, result.stderr
    assert out.is_file() and (tmp_path / "cli_verify.png").is_file()


@pytest.mark.ultralytics_83
@by_exporter
def test_stock_ultralytics_predicts_with_the_exported_onnx(recipe_weights, tmp_path, exporter):
    out = dattn.export(recipe_weights, imgsz=IMGSZ, output=tmp_path / "plain.onnx", verify=False, exporter=exporter)
    code = (
        "from ultralytics import YOLO\n"
        f"r = YOLO({str(out)!r}, task='detect').predict({str(v.sample_image_paths()[0])!r}, imgsz={IMGSZ}, conf=0.001, verbose=False)[0]\n"
        "import sys; assert 'dattn' not in sys.modules\n"
        "print('names', r.names, 'boxes', len(r.boxes))\n"
    )
    assert "names {0: 'box', 1: 'disc'}" in run_python(code, cwd=tmp_path).stdout


def _calibrated_checkpoint(cfg: str, path: Path) -> Path:
    """A model built from yaml whose BatchNorm statistics come from images, not from init."""
    from ultralytics import YOLO

    yolo = YOLO(cfg)
    images = torch.from_numpy(np.stack([letterboxed(p, (IMGSZ, IMGSZ)) for p in v.sample_image_paths()]))
    yolo.model.train()
    with torch.no_grad():
        for _ in range(5):
            yolo.model(images)
    yolo.model.eval()
    yolo.save(str(path))
    return path


@pytest.mark.ultralytics_83
@by_exporter
@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolov8n-dattn-p4.yaml", "yolo11n-dattn.yaml"])
def test_plain_p4_and_yolo11_models_export(cfg, tmp_path, exporter):
    weights = _calibrated_checkpoint(cfg, tmp_path / "w.pt")
    out = dattn.export(weights, imgsz=IMGSZ, output=tmp_path / "w.onnx", conf=0.001, exporter=exporter)
    assert "Einsum" not in {n.op_type for n in onnx.load(str(out)).graph.node}


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.ultralytics_83
@pytest.mark.parametrize("kwargs, message", [
    ({"opset": 13, "grid_sample": "native"}, "--grid-sample native needs opset 16"),
    ({"opset": 9}, "opset 9 is not supported"),
    ({"opset": 25}, "opset 25 is not supported"),
    ({"output": "missing-folder/x.onnx"}, "does not exist"),
    ({"output": "."}, "is a folder"),
    ({"output": "best.pt"}, "refusing to overwrite the input weights"),
    ({"target": "trt7"}, "unknown target"),
    ({"exporter": "jit"}, "unknown --exporter 'jit'"),
])
def test_bad_requests_fail_clearly_and_write_nothing(recipe_weights, tmp_path, kwargs, message):
    weights = tmp_path / "best.pt"
    weights.write_bytes(recipe_weights.read_bytes())
    kwargs = {k: (str(tmp_path / val) if k == "output" else val) for k, val in kwargs.items()}
    before = _listing(tmp_path)
    with pytest.raises(ConfigError, match=message) as error:
        dattn.export(weights, imgsz=IMGSZ, **kwargs)
    assert "\n" not in str(error.value)
    assert _listing(tmp_path) == before and weights.read_bytes() == recipe_weights.read_bytes()


@pytest.mark.ultralytics_83
def test_cli_rejects_weights_that_are_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(bad)], check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"dattn export: error: {bad}: not a PyTorch checkpoint (expected the zip archive that torch.save writes)"
    assert _listing(tmp_path) == ["notes.pt"]
