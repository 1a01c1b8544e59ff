"""`dattn predict` end to end: folders, globs, single images and videos; what it writes; every bad input one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import run_python
from runtime_models import exported_onnx, validation_images

from dattn.runtime import predict

CONF = 0.25


@pytest.fixture(scope="module")
def model(recipe_weights, tmp_path_factory):
    return exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160)


@pytest.fixture
def folder(recipe_run, tmp_path):
    """Validation images, a text file and a truncated JPEG."""
    images = tmp_path / "images"
    images.mkdir()
    for path in validation_images(recipe_run, 5):
        shutil.copy(path, images / path.name)
    (images / "notes.txt").write_text("labels go elsewhere\n")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    return images


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def test_folder_run_carries_on_past_bad_files(model, folder, tmp_path, capsys):
    from dattn.runtime import Detector

    out = tmp_path / "out"
    code = predict.main(["--model", str(model), "--source", str(folder), "--save-dir", str(out), "--save-json"])
    stderr = capsys.readouterr().err
    assert code == 1
    skipped = [line for line in stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2 and any("notes.txt: not a readable image" in s for s in skipped)
    assert any("broken.jpg: not a readable image" in s for s in skipped)
    assert _errors(stderr) == [f"dattn predict: error: 2 of 7 input files could not be read: {folder / 'broken.jpg'}, "
                               f"{folder / 'notes.txt'}"]
    assert "images/s" in stderr and "pre-process" in stderr and "inference" in stderr and "post-process" in stderr

    records = json.loads((out / "predictions.json").read_text())
    detector = Detector(model, conf=CONF)
    assert [r["file"] for r in records] == [str(p) for p in sorted(folder.glob("*.png"))]
    found = 0
    for record in records:
        expected = detector.predict(record["file"])
        assert record["classes"] == expected.class_names and record["class_ids"] == expected.class_ids.tolist()
        np.testing.assert_allclose(record["boxes"], expected.boxes.reshape(-1, 4), atol=0.01)
        np.testing.assert_allclose(record["scores"], expected.scores, atol=1e-5)
        found += len(record["scores"])
        import cv2

        annotated, original = cv2.imread(str(out / record["file"].split("/")[-1])), cv2.imread(record["file"])
        assert annotated.shape == original.shape
        assert (len(record["scores"]) == 0) == np.array_equal(annotated, original)  # boxes were drawn
    assert found >= 5


def test_glob_and_single_image(model, folder, tmp_path, capsys):
    json_path = tmp_path / "glob.json"
    assert predict.main(["--model", str(model), "--source", str(folder / "*.png"), "--save-json", str(json_path)]) == 0
    assert len(json.loads(json_path.read_text())) == 5
    single = str(sorted(folder.glob("*.png"))[0])
    assert predict.main(["--model", str(model), "--source", single, "--save-json", str(json_path), "--exist-ok"]) == 0
    assert [r["file"] for r in json.loads(json_path.read_text())] == [single]
    assert _errors(capsys.readouterr().err) == []


def test_video_is_written_back_with_one_record_per_frame(model, recipe_run, tmp_path, capsys):
    import cv2

    frames = [cv2.imread(str(p)) for p in validation_images(recipe_run, 6)]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 160))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    assert predict.main(["--model", str(model), "--source", str(video), "--save-dir", str(out), "--save-json"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert [(r["file"], r["frame"]) for r in records] == [(str(video), i) for i in range(6)]
    assert sum(len(r["scores"]) for r in records) >= 6
    written = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert (int(written.get(cv2.CAP_PROP_FRAME_WIDTH)), int(written.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (160, 160)


@pytest.mark.parametrize("options, message", [
    (["--conf", "1.5"], "--conf must be in [0, 1), got 1.5"),
    (["--conf", "-0.1"], "--conf must be in [0, 1), got -0.1"),
    (["--iou", "0"], "--iou must be in (0, 1], got 0.0"),
    (["--max-det", "0"], "--max-det must be at least 1"),
    (["--imgsz", "320"], "takes 160x160 images only"),
    (["--imgsz", "100"], "takes 160x160 images only"),
    (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or N"),
])
def test_bad_options_are_one_line(model, folder, capsys, options, message):
    assert predict.main(["--model", str(model), "--source", str(folder), *options]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr


def _bad_model(kind, model, tmp):
    """A model path of the given kind of wrongness."""
    if kind == "missing":
        return tmp / "missing.onnx"
    if kind == "folder":
        return tmp
    path, content = {
        "checkpoint": (tmp / "best.pt", b"PK\x03\x04 a zip"),
        "text": (tmp / "m.onnx", b"hello"),
        "truncated onnx": (tmp / "truncated.onnx", model.read_bytes()[: model.stat().st_size // 3]),
        "truncated engine": (tmp / "m.engine", b"\x40\x00\x00\x00{\"names\""),
    }[kind]
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"),
    ("folder", "is a folder, not a model file"),
    ("checkpoint", "is a PyTorch checkpoint"),
    ("text", "not a model ONNX Runtime can load"),
    ("truncated onnx", "truncated, or another kind of file"),
    ("truncated engine", "truncated: its header announces"),
])
def test_bad_model_files_are_one_line(model, folder, tmp_path, capsys, kind, message):
    path = _bad_model(kind, model, tmp_path)
    assert predict.main(["--model", str(path), "--source", str(folder)]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr


def test_missing_source_is_one_line(model, tmp_path, capsys):
    assert predict.main(["--model", str(model), "--source", str(tmp_path / "nothing*.jpg")]) == 2
    assert "the pattern matches no files" in capsys.readouterr().err


def test_engine_needing_the_missing_plugin_is_one_line(model, folder, tmp_path, monkeypatch, capsys):
    """A real engine file (TensorRT for RTX's plan in ultralytics' header) whose metadata says it uses the plugin."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) builds without a GPU")
    from engines import build_engine_file
    from dattn.runtime.engine_file import read_engine_file

    engine = build_engine_file(model, tmp_path / "best.engine", module_name="tensorrt_rtx")
    parsed = read_engine_file(engine)
    header = json.dumps({**parsed.metadata, "dattn_grid_sample": "plugin"}).encode()
    engine.write_bytes(len(header).to_bytes(4, "little") + header + parsed.plan)
    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "nowhere.so"))
    assert predict.main(["--model", str(engine), "--source", str(folder)]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and "dattn plugin build" in stderr and "DAttnGridSample" in stderr


def test_engine_for_another_gpu_is_one_line(folder, tmp_path, monkeypatch, capsys):
    """TensorRT's refusal (through a fake TensorRT: this machine has none) becomes one line naming the cause."""
    from fake_tensorrt import FakeTensorRT, engine_file_bytes

    from dattn.runtime import tensorrt_runner

    fake = FakeTensorRT("8.2", script=[["The engine plan file is generated on an incompatible device, expecting compute "
                                        "7.2 got compute 8.7, please rebuild."]])
    monkeypatch.setattr(tensorrt_runner, "import_tensorrt", lambda module_name: fake)
    monkeypatch.setattr(tensorrt_runner, "CudaRuntime", lambda: fake.cuda)
    engine = tmp_path / "xavier.engine"
    engine.write_bytes(engine_file_bytes({"names": {"0": "box"}}))
    assert predict.main(["--model", str(engine), "--source", str(folder)]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1
    assert "built for another GPU" in stderr and "engines are not portable" in stderr


def test_engine_refuses_cpu(tmp_path, folder, capsys):
    (tmp_path / "m.engine").write_bytes(b"ftrt" + bytes(10))
    assert predict.main(["--model", str(tmp_path / "m.engine"), "--source", str(folder), "--device", "cpu"]) == 2
    assert "runs on a GPU only" in capsys.readouterr().err


def test_console_command_and_plain_progress_without_tqdm(model, folder, tmp_path):
    """`dattn predict` through the console entry point, with tqdm made unimportable: plain progress lines."""
    code = ("import sys\nsys.modules['tqdm'] = None\nfrom dattn.cli import main\n"
            f"sys.exit(main(['predict', '--model', {str(model)!r}, '--source', {str(folder / '*.png')!r}]))")
    result = run_python(code)
    assert "1/5 images" in result.stderr and "5/5 images" in result.stderr
    assert "dattn predict: 5 images in" in result.stderr and "found " in result.stderr


def test_cli_lists_predict():
    result = run_python("from dattn.cli import main; main([])", check=False)
    assert "predict" in result.stdout


def test_help_runs_without_a_model():
    result = run_python(["-m", "dattn.runtime.predict", "--help"])
    assert "--save-json" in result.stdout and "--conf" in result.stdout


def test_read_ahead_gives_the_same_records(model, folder):
    """The read-ahead thread (used when the model runs on a GPU) changes the timing only, and names bad files too."""
    from dattn.runtime import Detector

    detector = Detector(model)
    files = sorted(str(p) for p in folder.iterdir())
    ahead, plain = predict.predict_files(detector, files, read_ahead=True), predict.predict_files(detector, files,
                                                                                                   read_ahead=False)
    assert ahead.records == plain.records and len(ahead.records) == 5
    assert ahead.failed == plain.failed == [str(folder / "broken.jpg"), str(folder / "notes.txt")]


def test_read_ahead_hands_errors_to_the_caller():
    def failing():
        yield 1
        raise ValueError("bad batch")

    seen = []
    with pytest.raises(ValueError, match="bad batch"):
        for value in predict.prefetched(failing()):
            seen.append(value)
    assert seen == [1]
