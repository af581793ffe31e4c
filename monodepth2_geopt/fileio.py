"""Atomic writes: the one place that writes a file or a folder so that readers never see half of it.

Convention: a file is written to a hidden temporary name beside its target (``.<name>.<random>.tmp<suffix>``,
same folder, so the final ``os.replace`` is one rename(2) on one file system) and renamed onto the target only
when the writer finished without an error. A failure, Ctrl-C included, leaves the previous target as it was and
no temporary file behind. Files end up mode 0644 (``mkstemp`` creates 0600), folders 0755.

Nothing here is fsynced unless the caller does it (``checkpoint.atomic_save`` fsyncs its file): a rename
survives a crash of the process, not necessarily one of the machine.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name beside ``path``, renamed onto ``path`` when the block ends without an error.

    Readers never see a half-written file, and a failure (or Ctrl-C) leaves the previous ``path`` untouched and
    no temporary file behind. The temporary name keeps ``path``'s suffix (np.save/np.savez add theirs otherwise,
    and PyAV picks its container from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build in; when the block ends without an error it replaces ``target``.

    The swap is two renames (the old ``target`` aside, the new folder in), then the old one is deleted, so a
    reader sees the old complete folder, the new complete folder, or (after a kill between the two renames)
    none: never a mix of old and new files. A failure or Ctrl-C removes the half-built folder and leaves
    ``target`` untouched; a hard kill leaves a hidden ``.<name>.building-<pid>-*`` folder that the next call
    removes (once that process is gone), like a ``.<name>.old-*`` folder left between the renames.
    """
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_leftover_dirs(parent, target.name)
    build = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.building-{os.getpid()}-"))
    try:
        yield build
        os.chmod(build, 0o755)  # mkdtemp creates 0700
        if target.is_dir() and any(target.iterdir()):
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.old-"))
            os.replace(target, old)  # rename(2) replaces the empty placeholder
            os.replace(build, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(build, target)  # an empty folder is replaced in one rename
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


def _remove_leftover_dirs(parent: Path, name: str) -> None:
    for path in parent.glob(f".{glob_escape(name)}.*"):
        kind, _, rest = path.name[len(name) + 2:].partition("-")
        if kind == "old" or (kind == "building" and not _pid_alive(rest.partition("-")[0])):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_dir"]
