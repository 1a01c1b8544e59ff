"""`dattn predict` end to end: folders, globs, single images and videos; what it writes; every bad input one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

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


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (links as their target's name), to check that nothing in it changed."""
    return {str(p.relative_to(folder)): (os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def _write_video(path: Path, frames: list) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _frames(path: Path) -> int:
    import cv2

    return int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))


def _annotated(detector, path) -> np.ndarray:
    """What `dattn predict` should write for the image at `path`."""
    from dattn.runtime.annotate import draw_predictions
    from dattn.runtime.preprocess import read_image

    return draw_predictions(read_image(path), detector.predict(str(path)))


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

    video = _write_video(tmp_path / "clip.mp4", [cv2.imread(str(p)) for p in validation_images(recipe_run, 6)])
    out = tmp_path / "out"
    assert predict.main(["--model", str(model), "--source", str(video), "--save-dir", str(out), "--save-json"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert [(r["file"], r["frame"], r["output"]) for r in records] == [(str(video), i, str(out / "clip.mp4"))
                                                                       for i in range(6)]
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
    (["--imgsz", "160", "160", "160"], "--imgsz takes one or two positive sizes (H or H W), got 160 160 160"),
    (["--imgsz", "0"], "--imgsz takes one or two positive sizes (H or H W), got 0"),
    (["--imgsz", "-32"], "--imgsz takes one or two positive sizes (H or H W), got -32"),
    (["--threads", "-3"], "--threads must be at least 1, got -3"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
])
def test_bad_options_are_one_line(model, folder, capsys, options, message):
    assert predict.main(["--model", str(model), "--source", str(folder), *options]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr


def test_dynamic_model_refuses_sizes_below_its_stride(recipe_weights, tmp_path_factory, folder, capsys):
    dynamic = exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True)
    capsys.readouterr()  # the export's own lines
    for size in ("16", "48"):
        assert predict.main(["--model", str(dynamic), "--source", str(folder), "--imgsz", size]) == 2
        stderr = capsys.readouterr().err
        assert stderr.strip().splitlines() == [f"dattn predict: error: --imgsz must be a positive multiple of the model's "
                                               f"stride 32, got {size}x{size}"]


def _engine_header(header: bytes) -> bytes:
    return len(header).to_bytes(4, "little") + header + b"ftrt" + bytes(60)


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
        "engine header not JSON": (tmp / "m.engine", _engine_header(b"{names: box}")),
        "engine header nested too deeply": (tmp / "m.engine", _engine_header(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000
                                                                             + b"}")),
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
    ("engine header not JSON", "damaged: its metadata header is not a JSON object"),
    ("engine header nested too deeply", "damaged: its metadata header is not a JSON object"),
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


# ---- where outputs go: never over what the user owns ------------------------------------------------


def test_save_dir_that_is_the_source_folder_leaves_the_inputs_alone(model, recipe_run, folder, tmp_path, capsys):
    """The source folder as --save-dir: outputs go to a fresh FOLDER2; the video is read whole (20 frames)."""
    import cv2

    frames = [cv2.imread(str(p)) for p in validation_images(recipe_run, 4)] * 5
    _write_video(folder / "clip.mp4", frames)
    before = _contents(folder)
    assert predict.main(["--model", str(model), "--source", str(folder), "--save-dir", str(folder), "--save-json"]) == 1
    stderr = capsys.readouterr().err
    fresh = Path(f"{folder}2")
    assert f"dattn predict: {folder} is not empty: writing to {fresh} (--exist-ok writes into {folder})" in stderr
    assert _contents(folder) == before
    records = json.loads((fresh / "predictions.json").read_text())
    assert [r["frame"] for r in records if r["file"] == str(folder / "clip.mp4")] == list(range(20))
    assert _frames(fresh / "clip.mp4") == 20
    assert sorted(p.name for p in fresh.iterdir()) == sorted([p.name for p in folder.glob("*.png")] +
                                                             ["clip.mp4", "predictions.json"])

    # --exist-ok writes into the folder itself, but never over an input: refused before anything runs.
    assert predict.main(["--model", str(model), "--source", str(folder), "--save-dir", str(folder), "--exist-ok"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines() == [f"dattn predict: error: --save-dir {folder}: the output {folder / '0000.png'} "
                                           "would replace an input; inputs are never written over: name another location"]
    assert _contents(folder) == before


def test_run_folders_are_fresh_unless_exist_ok(model, folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    source = str(folder / "*.png")
    assert predict.main(["--model", str(model), "--source", source, "--save-json"]) == 0
    first = (tmp_path / "runs" / "predict" / "predictions.json").read_bytes()
    assert "detections written to runs/predict/predictions.json" in capsys.readouterr().err
    assert predict.main(["--model", str(model), "--source", source, "--save-json", "--conf", "0.5"]) == 0
    assert "detections written to runs/predict2/predictions.json" in capsys.readouterr().err
    assert (tmp_path / "runs" / "predict" / "predictions.json").read_bytes() == first
    assert predict.main(["--model", str(model), "--source", source, "--save-json", "--conf", "0.5", "--exist-ok"]) == 0
    assert (tmp_path / "runs" / "predict" / "predictions.json").read_bytes() != first
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["predict", "predict2"]

    for expected in ("out", "out2"):
        assert predict.main(["--model", str(model), "--source", source, "--save-dir", "out"]) == 0
        assert f"annotated images written to {expected}\n" in capsys.readouterr().err
        assert len(list((tmp_path / expected).glob("*.png"))) == 5
    assert predict.main(["--model", str(model), "--source", source, "--save-dir", "out", "--exist-ok"]) == 0
    assert not (tmp_path / "out3").exists()


def test_explicit_json_file_is_replaced_only_with_exist_ok_and_never_an_input(model, folder, tmp_path, capsys):
    image = sorted(folder.glob("*.png"))[0]
    before = _contents(folder)
    for extra in ([], ["--exist-ok"]):
        assert predict.main(["--model", str(model), "--source", str(folder), "--save-json", str(image), *extra]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"dattn predict: error: --save-json {image}: the output {image} would replace an input; inputs are never "
            "written over: name another location"]
    assert _contents(folder) == before

    existing = tmp_path / "mine.json"
    existing.write_text("my notes\n")
    assert predict.main(["--model", str(model), "--source", str(image), "--save-json", str(existing)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dattn predict: error: --save-json {existing}: exists; pass --exist-ok to replace it, or name another file"]
    assert existing.read_text() == "my notes\n"
    assert predict.main(["--model", str(model), "--source", str(image), "--save-json", str(existing), "--exist-ok"]) == 0
    assert [r["file"] for r in json.loads(existing.read_text())] == [str(image)]


def test_links_at_output_paths_are_replaced_not_written_through(model, folder, tmp_path, capsys):
    from dattn.runtime import Detector

    image = sorted(folder.glob("*.png"))[0]
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "photo.png").write_bytes(b"the user's photo")
    (victims / "notes.json").write_text("the user's notes")
    out = tmp_path / "out"
    out.mkdir()
    (out / image.name).symlink_to(victims / "photo.png")
    (out / "predictions.json").symlink_to(victims / "notes.json")
    assert predict.main(["--model", str(model), "--source", str(image), "--save-dir", str(out), "--save-json",
                         "--exist-ok"]) == 0
    assert (victims / "photo.png").read_bytes() == b"the user's photo"
    assert (victims / "notes.json").read_text() == "the user's notes"
    assert not (out / image.name).is_symlink() and not (out / "predictions.json").is_symlink()
    import cv2

    np.testing.assert_array_equal(cv2.imread(str(out / image.name)), _annotated(Detector(model, conf=CONF), image))
    assert json.loads((out / "predictions.json").read_text())[0]["output"] == str(out / image.name)
    assert sorted(p.name for p in out.iterdir()) == sorted([image.name, "predictions.json"])  # no temporary files


def test_inputs_with_the_same_name_get_their_own_outputs(model, recipe_run, tmp_path):
    import cv2

    from dattn.runtime import Detector

    first, second = validation_images(recipe_run, 2)
    for sub, path in (("a", first), ("b", second)):
        (tmp_path / sub).mkdir()
        shutil.copy(path, tmp_path / sub / "x.png")
    out = tmp_path / "out"
    assert predict.main(["--model", str(model), "--source", str(tmp_path / "*" / "x.png"), "--save-dir", str(out),
                         "--save-json"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert [(r["file"], r["output"]) for r in records] == [(str(tmp_path / "a" / "x.png"), str(out / "x.png")),
                                                           (str(tmp_path / "b" / "x.png"), str(out / "x_2.png"))]
    detector = Detector(model, conf=CONF)
    for r in records:  # each output is its own input, annotated (PNG: lossless)
        np.testing.assert_array_equal(cv2.imread(r["output"]), _annotated(detector, r["file"]))


def test_images_whose_suffix_opencv_cannot_write_get_one_it_can(model, recipe_run, tmp_path, capsys):
    """A file without a suffix and a .jfif (both readable images): outputs get .jpg appended; the run goes on."""
    import cv2

    first, second, third = validation_images(recipe_run, 3)
    source = tmp_path / "images"
    source.mkdir()
    shutil.copy(first, source / "photo")
    (source / "scan.jfif").write_bytes(cv2.imencode(".jpg", cv2.imread(str(second)))[1].tobytes())
    shutil.copy(third, source / "z.png")
    out = tmp_path / "out"
    assert predict.main(["--model", str(model), "--source", str(source), "--save-dir", str(out), "--save-json"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "predictions.json", "scan.jfif.jpg", "z.png"]
    for name, original in (("photo.jpg", first), ("scan.jfif.jpg", second), ("z.png", third)):
        assert cv2.imread(str(out / name)).shape == cv2.imread(str(original)).shape
    assert _errors(capsys.readouterr().err) == []


def _run_with_file_size_limit(limit: int, args: list[str]):
    """predict.main in a fresh process whose files cannot grow past `limit` bytes: writes fail as on a full disk."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from dattn.runtime import predict\n"
            f"sys.exit(predict.main({args!r}))")
    return run_python(code, check=False)


def test_failed_writes_are_named_and_the_run_goes_on(model, recipe_run, folder, tmp_path):
    """Annotated PNGs (about 50 kB) and the mp4 cannot be written under an 8 kB limit; the JSON (2 kB) can."""
    import cv2

    _write_video(folder / "clip.mp4", [cv2.imread(str(p)) for p in validation_images(recipe_run, 6)])
    source = tmp_path / "source"
    source.mkdir()
    for path in [*folder.glob("*.png"), folder / "clip.mp4"]:
        shutil.copy(path, source / path.name)
    out = tmp_path / "out"
    result = _run_with_file_size_limit(8000, ["--model", str(model), "--source", str(source), "--save-dir", str(out),
                                              "--save-json"])
    assert result.returncode == 1, result.stderr
    names = sorted(p.name for p in source.glob("*.png"))
    for name in names:
        assert f"dattn predict: could not write {out / name}: File too large" in result.stderr
    assert f"dattn predict: could not write {out / 'clip.mp4'}: the video written holds" in result.stderr
    unwritten = ", ".join(str(out / n) for n in [*names, "clip.mp4"])
    assert _errors(result.stderr) == [f"dattn predict: error: 6 output file(s) could not be written: {unwritten}"]
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == 5 + 6  # every input was processed
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]  # and no partial file is left


def test_failed_json_write_is_named(model, folder, tmp_path):
    path = tmp_path / "found.json"
    result = _run_with_file_size_limit(100, ["--model", str(model), "--source", str(folder / "*.png"), "--save-json",
                                             str(path)])
    assert result.returncode == 1, result.stderr
    assert f"dattn predict: could not write {path}: File too large" in result.stderr
    assert _errors(result.stderr) == [f"dattn predict: error: 1 output file(s) could not be written: {path}"]
    assert list(tmp_path.iterdir()) == [folder]


@pytest.mark.parametrize("where", ["under a file", "in /proc"])
def test_unusable_output_locations_are_refused_before_the_run(model, folder, tmp_path, capsys, where):
    (tmp_path / "notes.txt").write_text("mine\n")
    if where == "under a file":
        options = ["--save-json", str(tmp_path / "notes.txt" / "out.json")]
        message = f"the folder {tmp_path / 'notes.txt'}: is a file, not a folder"
    else:
        options, message = ["--save-json", "/proc/predictions.json"], "cannot write in the folder /proc"
    assert predict.main(["--model", str(model), "--source", str(folder), *options]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and message in stderr and "images/s" not in stderr, stderr


def test_save_dir_that_is_a_file_is_one_line(model, folder, tmp_path, capsys):
    (tmp_path / "out").write_text("mine\n")
    assert predict.main(["--model", str(model), "--source", str(folder), "--save-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dattn predict: error: --save-dir {tmp_path / 'out'}: is a file, not a folder; name a folder (it is made when "
        "missing)"]
    assert (tmp_path / "out").read_text() == "mine\n"


def test_truncated_jpeg_is_named_in_a_warning(model, tmp_path, capsys):
    """OpenCV decodes a cut JPEG (grey where data is missing) and libjpeg's own message names no file."""
    from runtime_models import sample_images

    bus = sample_images()[0].read_bytes()
    source = tmp_path / "images"
    source.mkdir()
    (source / "whole.jpg").write_bytes(bus)
    (source / "cut.jpg").write_bytes(bus[: len(bus) * 2 // 3])
    assert predict.main(["--model", str(model), "--source", str(source), "--save-json", str(tmp_path / "p.json")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [f"dattn predict: warning: {source / 'cut.jpg'}: truncated or damaged image data (OpenCV decoded "
                        "what it could)"]
    assert len(json.loads((tmp_path / "p.json").read_text())) == 2


def test_interrupted_run_leaves_only_whole_files(model, recipe_run, folder, tmp_path):
    """Ctrl-C during a video (injected at the model's 8th run): the images written are whole, the video is not there."""
    import cv2

    from dattn.runtime import Detector
    from dattn.runtime.outputs import plan_outputs, prepare

    images = sorted(folder.glob("*.png"))[:3]
    files = [str(p) for p in images] + [str(_write_video(tmp_path / "clip.mp4", [cv2.imread(str(p)) for p in images] * 4))]

    class Interrupted(Detector):
        runs = 0

        def infer(self, batch):
            self.runs += 1
            if self.runs == 8:
                raise KeyboardInterrupt
            return super().infer(batch)

    detector = Interrupted(model, conf=CONF)
    plan = plan_outputs(files, str(tmp_path / "out"))
    prepare(plan)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_files(detector, files, plan.outputs)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images)
    for path in images:
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out" / path.name)), _annotated(detector, path))
