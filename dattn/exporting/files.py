"""Writing outputs safely: files and folders staged under temporary names beside their destinations, renamed into
place together on commit.

Readers never see half a file or half a folder; a failure or an interruption (an exception, Ctrl-C, SIGTERM)
before the commit leaves nothing behind and changes nothing. Everything gets the permissions a plain write would
give it (0o666 or 0o777 minus the umask; a replaced file keeps its mode), copies included. A symlink at a
destination is replaced, never what it points to; a device, FIFO or socket there is refused. An error while
writing names the destination, not a temporary.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dattn.errors import ConfigError

def check_destination(path: str | os.PathLike, kind: str = "file") -> None:
    """ConfigError unless `path` may become a `kind` ("file" or "folder"): it is absent, a symlink (the link is
    replaced, never its target) or already a `kind`. Writers check this again when they stage."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode) or (stat.S_ISREG(mode) if kind == "file" else stat.S_ISDIR(mode)):
        return
    found = "a folder" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a device, FIFO or socket"
    raise ConfigError(f"{path}: is {found}, which dattn does not replace with a {kind}; pass another path")


@contextlib.contextmanager
def _naming(destination: Path):
    """OSErrors while writing name the destination asked for (a full disk, say), never a temporary path."""
    try:
        yield
    except OSError as error:
        if isinstance(error, FileNotFoundError) and not destination.parent.is_dir():
            raise OSError(error.errno, f"cannot be written, folder {destination.parent} does not exist",
                          str(destination)) from error
        raise OSError(error.errno, error.strerror or str(error), str(destination)) from error


def _remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _hidden_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


def _signature(path: Path) -> tuple | None:
    """What tells whether a folder at `path` changed (appeared, went, was swapped, gained or lost an entry)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino, found.st_mode, found.st_mtime_ns


@dataclass
class _Output:
    destination: Path
    kind: str  # file | folder | removal
    temporary: Path | None  # None for a removal
    seen: tuple | None = None  # a folder or removal: the destination as it was when staged (see _signature)


def _kept_mode(path: Path) -> int | None:
    """The mode of the regular file at `path`, which a replacement keeps; None when there is none."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    return stat.S_IMODE(found.st_mode) if stat.S_ISREG(found.st_mode) else None


def _create_file(path: Path, executable: bool) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if executable else 0o666)  # minus the umask


class StagedOutputs:
    """Files and folders written under temporary names beside their destinations, renamed into place on commit.

    Use as a context manager: leaving the block (by an exception, KeyboardInterrupt or SystemExit) removes what is
    staged and not committed. A destination inside a staged folder is written in place there and goes with it.
    Two outputs for one destination are refused (ConfigError), as are destinations that are not regular files or
    folders (see check_destination).
    """

    def __init__(self):
        self._outputs: dict[Path, _Output] = {}  # top-level destinations (normalised) -> output
        self._claimed: set[Path] = set()  # every destination staged, top-level or inside a staged folder
        self._folders: dict[Path, Path] = {}  # staged folders (absolute destination) -> where they are now

    @staticmethod
    def _key(path: Path) -> Path:
        """A top-level destination, normalised: two spellings of one path (through links, '..') are one key."""
        return path.parent.resolve() / path.name

    def _claim(self, path: Path, kind: str) -> tuple[Path, Path | None]:
        """(normalised destination, its place inside a staged folder, or None for a top-level output)."""
        spelled = Path(os.path.abspath(path))  # never resolved: a link at a staged folder's place is being replaced
        inside = self._folders[spelled.parent] / spelled.name if spelled.parent in self._folders else None
        key = spelled if inside is not None else self._key(path)
        if key in self._claimed:
            raise ConfigError(f"{path}: two outputs of this export would be written to this one path; "
                              "give them different names")
        if inside is None and kind != "removal":
            check_destination(path, kind)
        self._claimed.add(key)
        return key, inside

    def _reserve(self, key: Path, path: Path, kind: str, create):
        """A temporary name beside `path`, recorded before `create(name)` makes it (so that an interruption between
        the two leaves nothing unrecorded); returns (name, what create returned)."""
        while True:
            temporary = _hidden_name(path, ".tmp")
            self._outputs[key] = _Output(path, kind, temporary)
            try:
                return temporary, create(temporary)
            except FileExistsError:  # someone else's: forget the name, never remove their file
                del self._outputs[key]

    def file(self, path: Path, data: bytes | str, executable: bool = False) -> Path:
        """Stage `data` for the file `path`; returns where it is now (complete, readable for checks)."""
        data = data.encode() if isinstance(data, str) else data
        return self._write(Path(path), lambda f: f.write(data), executable)

    def copy(self, path: Path, source: Path, executable: bool | None = None) -> Path:
        """Stage a copy of `source` for `path`, with a plain write's permissions (executable: as the source is)."""
        source = Path(source)
        if executable is None:
            executable = bool(source.stat().st_mode & stat.S_IXUSR)
        with open(source, "rb") as original:
            return self._write(Path(path), lambda f: shutil.copyfileobj(original, f), executable)

    def _write(self, path: Path, fill, executable: bool) -> Path:
        key, inside = self._claim(path, "file")
        with _naming(path):
            if inside is not None:
                where, fd = inside, _create_file(inside, executable)
            else:
                kept = _kept_mode(path)
                where, fd = self._reserve(key, path, "file", lambda name: _create_file(name, executable))
                if kept is not None:
                    os.fchmod(fd, kept)  # a replaced file keeps its mode
            with os.fdopen(fd, "wb") as f:
                fill(f)
        return where

    def folder(self, path: Path) -> Path:
        """Stage an empty folder for `path`, filled by staging destinations inside it; returns where it is now."""
        path = Path(path)
        key, inside = self._claim(path, "folder")
        with _naming(path):
            if inside is not None:
                os.mkdir(inside)  # 0o777 minus the umask
                where = inside
            else:
                seen = _signature(path)
                where, _ = self._reserve(key, path, "folder", os.mkdir)
                self._outputs[key].seen = seen
        self._folders[Path(os.path.abspath(path))] = where
        return where

    def copy_tree(self, path: Path, source: Path, skip: tuple[str, ...] = ()) -> None:
        """Stage a copy of the folder `source` for `path`, leaving out names that match a glob pattern in `skip`."""
        path, source = Path(path), Path(source)
        self.folder(path)
        for entry in sorted(source.iterdir()):
            if any(fnmatch.fnmatch(entry.name, pattern) for pattern in skip):
                continue
            if entry.is_dir():
                self.copy_tree(path / entry.name, entry, skip)
            elif entry.is_file():
                self.copy(path / entry.name, entry)

    def remove(self, path: Path) -> None:
        """Remove `path` (a file, a link or a folder) on commit."""
        path = Path(path)
        key, inside = self._claim(path, "removal")
        if inside is not None:
            raise ConfigError(f"{path}: is inside a folder this export writes; there is nothing to remove")
        self._outputs[key] = _Output(path, "removal", None, _signature(path))

    @property
    def paths(self) -> list[Path]:
        """The top-level destinations staged (or to be removed) and not yet committed."""
        return [output.destination for output in self._outputs.values()]

    def commit(self, *paths: Path) -> list[Path]:
        """Put the staged `paths` in place (and remove those staged for removal) together: whatever is there is moved
        aside first and deleted once all are in place; a failure or an interruption midway puts everything back.
        A folder (or a removal) whose destination changed since it was staged is refused (ConfigError): what is
        deleted is only ever what the writer saw. Returns the destinations written."""
        outputs = [self._outputs[self._key(Path(path))] for path in paths]
        aside, placed = [], []  # each recorded before its rename, so that an interruption can be undone
        try:
            for output in outputs:
                if output.temporary is not None:
                    check_destination(output.destination, output.kind)  # nothing odd appeared there meanwhile
                if output.kind != "file" and _signature(output.destination) != output.seen:
                    raise ConfigError(f"{output.destination}: changed while this export ran, so it was left as it is; "
                                      "run the export again")
                with _naming(output.destination):
                    if os.path.lexists(output.destination):
                        aside.append((output.destination, _hidden_name(output.destination, ".old")))
                        os.rename(*aside[-1])
                    if output.temporary is not None:
                        placed.append(output)
                        os.rename(output.temporary, output.destination)
        except BaseException:
            for output in reversed(placed):  # back to their temporary names, which discard() removes
                if not os.path.lexists(output.temporary):
                    with contextlib.suppress(OSError):
                        os.rename(output.destination, output.temporary)
            for destination, old in reversed(aside):
                if os.path.lexists(old):
                    with contextlib.suppress(OSError):
                        os.rename(old, destination)
            raise
        for output in outputs:
            del self._outputs[self._key(output.destination)]
            spelled = Path(os.path.abspath(output.destination))
            self._folders = {k: v for k, v in self._folders.items() if k != spelled and spelled not in k.parents}
        for _, old in aside:
            _remove(old)
        return [output.destination for output in outputs if output.temporary is not None]

    def discard(self) -> None:
        """Remove everything staged and not committed."""
        for output in self._outputs.values():
            if output.temporary is not None:
                _remove(output.temporary)
        self._outputs.clear()
        self._claimed.clear()
        self._folders.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False
