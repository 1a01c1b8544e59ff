"""The one way dattn writes outputs (dattn.exporting.files.StagedOutputs), on the real file system.

Staged files and folders sit under hidden temporary names beside their destinations until the commit renames them
into place; an exception or an interruption before that leaves the folder as it was. Modes are a plain write's,
copies included; symlinks are replaced, never followed; devices, FIFOs and sockets are refused; two outputs for one
path are refused; a write error names the destination.
"""

import errno
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_python

from dattn.errors import ConfigError
from dattn.exporting.files import StagedOutputs, check_destination


def listing(folder: Path) -> dict:
    """Every entry under `folder` with what it is: its bytes, 'folder', 'link -> target' or its file type."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            found[name] = "folder"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = stat.S_IFMT(path.lstat().st_mode)
    return found


def stage_everything(staged: StagedOutputs, out: Path) -> list[Path]:
    """A file, a folder with a file, a copy and a subfolder inside; returns the top-level destinations."""
    staged.file(out / "model.onnx", b"graph")
    staged.folder(out / "bundle")
    staged.file(out / "bundle" / "run.py", "print('hi')\n", executable=True)
    staged.folder(out / "bundle" / "dattn")
    staged.copy(out / "bundle" / "dattn" / "copied.py", Path(__file__))
    return [out / "model.onnx", out / "bundle"]


def test_outputs_appear_only_on_commit_and_nothing_else_is_left(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with StagedOutputs() as staged:
        destinations = stage_everything(staged, tmp_path)
        assert staged.paths == destinations
        hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert len(hidden) == 2 and all(name.endswith(".tmp") for name in hidden)
        assert not any(path.exists() for path in destinations)
        assert staged.commit(*destinations) == destinations
    assert listing(tmp_path) == {
        "bundle": "folder", "bundle/dattn": "folder", "bundle/dattn/copied.py": Path(__file__).read_bytes(),
        "bundle/run.py": b"print('hi')\n", "model.onnx": b"graph", "notes.txt": b"mine"}


@pytest.mark.parametrize("interruption", [RuntimeError("a failed step"), KeyboardInterrupt(), SystemExit(143)],
                         ids=["exception", "ctrl-c", "sigterm"])
def test_leaving_the_block_before_the_commit_changes_nothing(tmp_path, interruption):
    (tmp_path / "model.onnx").write_bytes(b"the earlier export")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "stale").mkdir()
    before = listing(tmp_path)
    with pytest.raises(type(interruption)):
        with StagedOutputs() as staged:
            stage_everything(staged, tmp_path)
            staged.remove(tmp_path / "stale")
            raise interruption
    assert listing(tmp_path) == before


def test_a_failure_midway_through_the_commit_puts_everything_back(tmp_path):
    (tmp_path / "a.onnx").write_bytes(b"old a")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "kept.txt").write_text("old folder")
    with StagedOutputs() as staged:
        staged.file(tmp_path / "a.onnx", b"new a")
        staged.remove(tmp_path / "old")
        staged.file(tmp_path / "b.onnx", b"new b")
        os.mkfifo(tmp_path / "b.onnx")  # appears after staging: the commit refuses it, after a.onnx went in
        before = listing(tmp_path)
        del before[next(name for name in before if name.startswith(".a.onnx."))]
        del before[next(name for name in before if name.startswith(".b.onnx."))]
        with pytest.raises(ConfigError, match="b.onnx: is a device, FIFO or socket"):
            staged.commit(tmp_path / "a.onnx", tmp_path / "old", tmp_path / "b.onnx")
    assert listing(tmp_path) == before
    assert (tmp_path / "a.onnx").read_bytes() == b"old a" and stat.S_ISFIFO((tmp_path / "b.onnx").lstat().st_mode)


def test_removals_happen_on_commit_and_take_links_not_their_targets(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "yours.txt").write_text("yours")
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "old.txt").write_text("old")
    with StagedOutputs() as staged:
        staged.remove(tmp_path / "link")
        staged.remove(tmp_path / "stale")
        assert (tmp_path / "stale" / "old.txt").exists()
        assert staged.commit(*staged.paths) == []
    assert listing(tmp_path) == {"target": "folder", "target/yours.txt": b"yours"}


def test_a_symlink_at_the_destination_is_replaced_never_its_target(tmp_path):
    (tmp_path / "target.onnx").write_bytes(b"not yours to overwrite")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "yours.txt").write_text("yours")
    (tmp_path / "m.onnx").symlink_to(tmp_path / "target.onnx")
    (tmp_path / "bundle").symlink_to(tmp_path / "target")
    with StagedOutputs() as staged:
        staged.file(tmp_path / "m.onnx", b"new")
        staged.folder(tmp_path / "bundle")
        staged.file(tmp_path / "bundle" / "model.onnx", b"new")
        staged.commit(*staged.paths)
    assert listing(tmp_path) == {"bundle": "folder", "bundle/model.onnx": b"new", "m.onnx": b"new",
                                 "target": "folder", "target.onnx": b"not yours to overwrite",
                                 "target/yours.txt": b"yours"}


def special_files(folder: Path) -> dict[str, Path]:
    """A FIFO, a socket and (as root) a character device like /dev/null, made in `folder`."""
    made = {"fifo": folder / "fifo"}
    os.mkfifo(made["fifo"])
    made["socket"] = folder / "socket"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(made["socket"]))
    server.close()
    if os.geteuid() == 0:
        made["device"] = folder / "null"
        os.mknod(made["device"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return made


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_devices_fifos_and_sockets_are_refused_and_left_alone(tmp_path, kind):
    for label, path in special_files(tmp_path).items():
        before = listing(tmp_path)
        with pytest.raises(ConfigError, match="is a device, FIFO or socket") as error:
            check_destination(path, kind)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
        with StagedOutputs() as staged, pytest.raises(ConfigError, match="is a device, FIFO or socket"):
            staged.file(path, b"data") if kind == "file" else staged.folder(path)
        assert listing(tmp_path) == before, label


def test_a_folder_is_not_replaced_by_a_file_nor_a_file_by_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with StagedOutputs() as staged:
        with pytest.raises(ConfigError, match="folder: is a folder"):
            staged.file(tmp_path / "folder", b"data")
        with pytest.raises(ConfigError, match="file: is a file"):
            staged.folder(tmp_path / "file")
    check_destination(tmp_path / "missing", "file")
    check_destination(tmp_path / "file", "file")
    check_destination(tmp_path / "folder", "folder")


def test_two_outputs_for_one_destination_are_refused(tmp_path):
    """--format engine --keep-onnx --output x.onnx: the engine and the kept ONNX would both be x.onnx."""
    (tmp_path / "sub").mkdir()
    with StagedOutputs() as staged:
        staged.file(tmp_path / "x.onnx", b"engine")
        with pytest.raises(ConfigError, match="x.onnx: two outputs of this export would be written to this one path"):
            staged.file(tmp_path / "sub" / ".." / "x.onnx", b"kept onnx")
        staged.folder(tmp_path / "repo")
        staged.file(tmp_path / "repo" / "config.pbtxt", b"one")
        with pytest.raises(ConfigError, match="two outputs"):
            staged.file(tmp_path / "repo" / "config.pbtxt", b"two")
        staged.commit(*staged.paths)
    assert listing(tmp_path) == {"repo": "folder", "repo/config.pbtxt": b"one", "sub": "folder", "x.onnx": b"engine"}


MODES = """
import os, stat, sys
from pathlib import Path
from dattn.exporting.files import StagedOutputs

os.umask(0o027)
out, source = Path(sys.argv[1]), Path(sys.argv[2])
(out / "kept.onnx").write_bytes(b"old")
os.chmod(out / "kept.onnx", 0o604)
with StagedOutputs() as staged:
    staged.file(out / "new.onnx", b"x")
    staged.file(out / "kept.onnx", b"x")
    staged.file(out / "top.sh", b"x", executable=True)
    staged.folder(out / "folder")
    staged.file(out / "folder" / "inner.txt", b"x")
    staged.copy(out / "folder" / "copied.py", source)
    staged.copy(out / "folder" / "script.sh", source, executable=True)
    staged.folder(out / "folder" / "sub")
    staged.commit(*staged.paths)
for path in sorted(out.rglob("*")):
    print(path.relative_to(out), oct(stat.S_IMODE(path.stat().st_mode)))
"""


def test_modes_are_a_plain_writes_under_the_umask_copies_included(tmp_path):
    source = tmp_path / "source.py"
    source.write_text("x = 1\n")
    os.chmod(source, 0o644)  # a copy takes the umask's mode, not its source's
    out = tmp_path / "out"
    out.mkdir()
    result = run_python(["-c", MODES, str(out), str(source)])
    modes = dict(line.split() for line in result.stdout.splitlines())
    assert modes == {"folder": "0o750", "folder/copied.py": "0o640", "folder/inner.txt": "0o640",
                     "folder/script.sh": "0o750", "folder/sub": "0o750", "kept.onnx": "0o604", "new.onnx": "0o640",
                     "top.sh": "0o750"}


FILL = """
import resource, signal, sys
from pathlib import Path
from dattn.exporting.files import StagedOutputs

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
out = Path(sys.argv[1])
try:
    with StagedOutputs() as staged:
        staged.folder(out / "repo")
        staged.file(out / "repo" / "model.onnx", bytes(10000))
except OSError as error:
    print(error.errno, error.filename)
"""


def test_a_write_error_names_the_destination_and_leaves_nothing(tmp_path):
    """A file-size limit makes the kernel refuse the write itself, as a full disk does (see test_cli_failures)."""
    result = subprocess.run([sys.executable, "-c", FILL, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(errno.EFBIG), str(tmp_path / "repo" / "model.onnx")]
    assert listing(tmp_path) == {}


def test_a_missing_folder_is_named(tmp_path):
    with StagedOutputs() as staged, pytest.raises(OSError, match="cannot be written, folder .*nodir does not exist") as error:
        staged.file(tmp_path / "nodir" / "x.onnx", b"x")
    assert error.value.filename == str(tmp_path / "nodir" / "x.onnx")


def test_a_folder_that_changed_after_staging_is_never_deleted(tmp_path):
    """Writers check what they replace when they stage (an empty bundle folder, a Triton model folder of their own);
    what appeared afterwards is not theirs to delete."""
    (tmp_path / "bundle").mkdir()
    (tmp_path / "stale").mkdir()
    with StagedOutputs() as staged:
        staged.folder(tmp_path / "bundle")
        staged.remove(tmp_path / "stale")
        staged.folder(tmp_path / "repo")
        (tmp_path / "bundle" / "yours.txt").write_text("written meanwhile")
        (tmp_path / "repo").mkdir()
        before = {name: value for name, value in listing(tmp_path).items() if not name.startswith(".")}
        for path in (tmp_path / "bundle", tmp_path / "repo"):
            with pytest.raises(ConfigError, match=f"{path.name}: changed while this export ran"):
                staged.commit(tmp_path / "stale", path)
    assert listing(tmp_path) == before
