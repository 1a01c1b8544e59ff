"""Every failure of dattn-export is one line and leaves nothing behind; outputs get ordinary permissions."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dattn
from conftest import run_python
from dattn.errors import ConfigError

IMGSZ = 160


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _cli(*args, cwd=None, env=None):
    return run_python(["-m", "dattn.cli", "export", *[str(a) for a in args]], cwd=cwd, check=False, env=env)


@pytest.fixture
def weights(recipe_weights, tmp_path):
    path = tmp_path / "w" / "best.pt"
    path.parent.mkdir()
    shutil.copy(recipe_weights, path)
    return path


def _export_process(*args, cwd, env=None):
    return subprocess.Popen([sys.executable, "-m", "dattn.cli", "export", *[str(a) for a in args]], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _shared_repository(folder: Path) -> Path:
    """Where the folder formats write: a Triton repository holding the user's things, or an empty bundle folder."""
    folder.mkdir()
    (folder / "NOTES.txt").write_text("my notes")
    (folder / "detector").mkdir()
    return folder


@pytest.mark.parametrize("signum, status, format", [(signal.SIGTERM, 143, "onnx"), (signal.SIGINT, 130, "onnx"),
                                                    (signal.SIGTERM, 143, "triton"), (signal.SIGINT, 130, "bundle")])
def test_a_signal_during_verification_cleans_up_and_exits_conventionally(weights, tmp_path, signum, status, format):
    out, temporary = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    temporary.mkdir()
    output = {"onnx": out / "t.onnx", "triton": _shared_repository(out / "repo"), "bundle": out / "bundle"}[format]
    before = _listing(out)
    process = _export_process("--weights", weights, "--imgsz", IMGSZ, "--output", output, "--dynamic", "--format", format,
                              cwd=tmp_path, env={"TMPDIR": str(temporary)})
    seen = []
    for line in process.stderr:  # signalled once verification has begun (staging an interrupted commit: test_files.py)
        seen.append(line)
        if "verifying the FP32 ONNX" in line:
            break
    assert process.poll() is None, "".join(seen)
    process.send_signal(signum)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert process.returncode == status, stderr[-2000:]
    assert _listing(out) == before, "the staged files were left behind"
    # ONNX Runtime keeps a session-id file (.ses) in TMPDIR; the export's own temporary files all start so:
    assert not [name for name in _listing(temporary) if name.startswith(("dattn-", "tmp"))], "temporary files left behind"
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and ("interrupted" in last or status == 143)


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs: every export's first large file fills it (needs root and a kernel that lets us mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("format", ["onnx", "triton", "bundle"])
def test_a_full_disk_names_the_output_and_leaves_nothing_behind(weights, tmp_path, full_disk, format):
    output = {"onnx": full_disk / "m.onnx", "triton": _shared_repository(full_disk / "repo"), "bundle": full_disk / "bundle"}[format]
    before = _listing(full_disk)
    result = _cli("--weights", weights, "--imgsz", IMGSZ, "--format", format, "--output", output, "--no-verify",
                  env={"TMPDIR": str(tmp_path)})
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"error: {output}" in last and last.endswith("No space left on device"), last
    assert _listing(full_disk) == before


def test_an_output_that_is_not_a_regular_file_is_refused_and_left_alone(weights, tmp_path):
    """--output /dev/null as root would replace the system's /dev/null: a FIFO stands in for it here."""
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    result = _cli("--weights", weights, "--imgsz", IMGSZ, "--output", fifo, "--no-verify")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "is a device, FIFO or socket" in result.stderr.strip().splitlines()[-1]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert _listing(tmp_path) == ["fifo.onnx", "w", "w/best.pt"]


@pytest.mark.skipif(pytest.importorskip("importlib").util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt_rtx")
def test_a_kept_onnx_never_takes_the_engines_path(weights, tmp_path):
    """--format engine --keep-onnx --output x.onnx: the engine and the kept ONNX would share one path."""
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match="x.onnx"):
        dattn.export(weights, format="engine", target="trt-rtx", imgsz=IMGSZ, output=out / "x.onnx", keep_onnx=True,
                     verify=False)
    assert _listing(out) == []


def test_outputs_get_the_umask_and_keep_a_replaced_files_mode(weights, tmp_path):
    out = tmp_path / "modes"
    out.mkdir()
    code = ("import os, dattn; os.umask(0o022)\n"
            f"dattn.export({str(weights)!r}, imgsz={IMGSZ}, output={str(out / 'new.onnx')!r}, verify=False)\n")
    run_python(code)
    assert stat.S_IMODE((out / "new.onnx").stat().st_mode) == 0o644
    (out / "kept.onnx").write_bytes(b"old")
    os.chmod(out / "kept.onnx", 0o640)
    dattn.export(weights, imgsz=IMGSZ, output=out / "kept.onnx", verify=False)
    assert stat.S_IMODE((out / "kept.onnx").stat().st_mode) == 0o640 and (out / "kept.onnx").stat().st_size > 1000


@pytest.mark.skipif(pytest.importorskip("importlib").util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt_rtx")
def test_an_engine_leaves_the_weights_folder_alone(weights, tmp_path):
    (weights.parent / "best.onnx").write_bytes(b"the user's own ONNX")
    os.chmod(weights.parent, 0o555)  # read-only weights folder
    try:
        out = tmp_path / "engines"
        out.mkdir()
        result = _cli("--weights", weights, "--format", "engine", "--target", "trt-rtx", "--imgsz", IMGSZ,
                      "--output", out / "m.engine", "--no-verify")
    finally:
        os.chmod(weights.parent, 0o755)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (weights.parent / "best.onnx").read_bytes() == b"the user's own ONNX"
    assert _listing(weights.parent) == ["best.onnx", "best.pt"]
    assert _listing(out) == ["m.engine"]
    assert "the ONNX the engine was built from is not kept" in result.stderr


def test_an_engine_build_failure_removes_what_the_run_wrote(weights, tmp_path, monkeypatch):
    pytest.importorskip("tensorrt_rtx")
    from dattn.exporting import tensorrt

    def fail(*args, **kwargs):
        raise RuntimeError("TensorRT failed to build an engine (the builder said no)")

    monkeypatch.setattr(tensorrt, "build_serialized_engine", fail)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="failed to build"):
        dattn.export(weights, format="engine", target="trt-rtx", imgsz=IMGSZ, output=out / "m.engine", keep_onnx=True)
    assert _listing(out) == [], "the ONNX, the picture or a temporary file was left behind"


def test_plugin_engine_without_the_library_stops_before_any_work(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "missing" / "libdattn_trt_plugins.so"))
    started = time.monotonic()
    result = _cli("--weights", weights, "--format", "engine", "--target", "trt", "--grid-sample", "plugin",
                  "--imgsz", IMGSZ, "--output", tmp_path / "p.engine")
    assert result.returncode == 2 and "dattn plugin build" in result.stderr.strip().splitlines()[-1]
    assert "loading" not in result.stderr, "the model was loaded before the missing library was noticed"
    assert time.monotonic() - started < 60
    assert not (tmp_path / "p.engine").exists()


def test_a_picture_that_cannot_be_written_is_reported(weights, tmp_path):
    out = tmp_path / "pic"
    (out / "m_verify.png").mkdir(parents=True)  # a folder where the picture should go
    result = _cli("--weights", weights, "--imgsz", IMGSZ, "--output", out / "m.onnx")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "WARNING: could not write" in result.stderr and "m_verify.png" in result.stderr
    assert (out / "m.onnx").is_file() and (out / "m_verify.png").is_dir()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def _whole_model_checkpoint(weights: Path, path: Path) -> Path:
    run_python(f"import dattn, torch; torch.save(dattn.load({str(weights)!r}).model, {str(path)!r})")
    return path


@pytest.mark.parametrize("args, expected", [
    (["--device", "cuda:0"], "CUDA is not available here"),
    (["--device", "foo"], "unknown --device 'foo'"),
    (["--imgsz", "100000"], "is larger than 4096"),
    (["--conf", "2"], "--conf must be between 0 and 1"),
    (["--conf", "nan"], "--conf must be between 0 and 1"),
    (["--conf", "0"], "--conf must be between 0 and 1"),
    (["--conf", "-1"], "--conf must be between 0 and 1"),
])
def test_bad_options_are_one_line(weights, tmp_path, args, expected):
    result = _cli("--weights", weights, "--imgsz", IMGSZ, *args, "--output", tmp_path / "x.onnx")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.onnx").exists()


def test_missing_weights_in_a_missing_folder_name_the_weights(tmp_path):
    result = _cli("--weights", tmp_path / "nodir" / "missing.pt")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("nodir/missing.pt: no such file")


def test_an_onnx_given_as_weights_points_to_dattn_predict(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    result = _cli("--weights", model)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "expects a .pt checkpoint" in last and "dattn predict" in last


def test_a_pickled_model_instead_of_a_checkpoint_is_one_line(weights, tmp_path):
    bare = _whole_model_checkpoint(weights, tmp_path / "bare.pt")
    result = _cli("--weights", bare, "--imgsz", IMGSZ, "--output", tmp_path / "bare.onnx")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "not an ultralytics checkpoint" in result.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop to another user")
def test_unreadable_weights_are_one_line(weights, tmp_path, tmp_path_factory):
    os.chmod(weights, 0o600)  # readable by root only; the export runs as nobody
    for folder in (tmp_path_factory.getbasetemp(), tmp_path, weights.parent):
        os.chmod(folder, 0o755)
    env = {**os.environ, "HOME": str(tmp_path), "YOLO_CONFIG_DIR": str(tmp_path)}
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "dattn.cli", "export", "--weights", str(weights)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "permission denied" in result.stderr.strip().splitlines()[-1].lower()


def test_debug_shows_the_traceback(tmp_path):
    result = _cli("--weights", tmp_path / "missing.pt", "--debug")
    assert "Traceback" in result.stderr and "CheckpointError" in result.stderr


def test_onnx_to_an_engine_name_is_flagged(weights, tmp_path):
    result = _cli("--weights", weights, "--imgsz", IMGSZ, "--format", "onnx", "--output", tmp_path / "m.engine", "--no-verify")
    assert result.returncode == 0
    assert "WARNING: --output" in result.stderr and "writes ONNX" in result.stderr


def test_plugin_form_for_onnx_runtime_says_how_to_run_it(weights, tmp_path):
    result = _cli("--weights", weights, "--imgsz", IMGSZ, "--grid-sample", "plugin", "--output", tmp_path / "p.onnx")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "WARNING: --grid-sample plugin writes a DAttnGridSample node" in result.stderr and "dattn predict" in result.stderr


def test_a_plain_yolo_summary_does_not_talk_about_sampling(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "plain.pt"
    YOLO("yolov8n.yaml").save(str(path))
    result = _cli("--weights", path, "--imgsz", IMGSZ, "--output", tmp_path / "plain.onnx", "--conf", "0.01")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "grid-sample" not in result.stderr and "no sampling step (no DAttention or deformable decoder)" in result.stderr


def test_inputs_are_checked_before_outputs(weights, tmp_path):
    with pytest.raises(dattn.CheckpointError, match="missing.pt: no such file"):
        dattn.export(tmp_path / "missing.pt", output=tmp_path / "nodir" / "x.onnx")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(dattn.CheckpointError, match="truncated or corrupted"):
        dattn.export(damaged, output=tmp_path / "nodir" / "x.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        dattn.export(weights, output=tmp_path / "nodir" / "x.onnx")
