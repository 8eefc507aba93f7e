"""Files at the edges: output paths checked before work starts, atomic writes, and pickle-free array files.

- ``check_outputs({"--save": path, ...})`` refuses, before any work, an output whose folder is missing
  or not writable, whose name is a folder or not a regular file, or which two options share.
- ``atomic_write(path, write)`` writes to ``.<name>.<8 chars>.tmp`` beside ``path``, fsyncs it and
  renames it over ``path``; a full disk or a read-only folder raises ``SaveError`` naming the path and
  saying that the previous file is intact. Temporary files of an interrupted earlier write to the same
  path (that name pattern, a regular file, untouched for ``STALE_TEMP_AGE_S``) are removed first.
- ``read_npz`` / ``read_npy`` read arrays without ever unpickling: a file that is not what it should be
  raises ``ArrayFileError`` saying what it is instead, and a header declaring more data than the file
  holds is refused before anything is allocated.
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
import stat
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

STALE_TEMP_AGE_S = 600.0  # a live write touches its temporary file far more often than this
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_NPY_HEADER = 100_000
_DEFLATE_MAX_RATIO = 1032  # deflate expands a stream at most this much: a bound on a member's real size


class SaveError(OSError):
    """A file could not be written (full disk, read-only folder, ...); the previous file is intact.
    ``errno`` is the cause's error number; the message names the path."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = code


class ArrayFileError(ValueError):
    """A file that should hold arrays is missing, of another kind, truncated or holds objects."""


# --------------------------------------------------------------------------- writing


def check_output(option: str, path: str | os.PathLike) -> Path:
    """``path`` as a file a command may write: its folder exists and is writable, the name is not a
    folder, and an existing file there is a regular file. ``option`` names it in the ValueError."""
    text = os.fspath(path)
    if not text or text.endswith(os.sep):
        raise ValueError(f"{option} {text!r}: expected a file name, got {'a folder' if text else 'nothing'}")
    target = Path(os.path.realpath(text))  # a symlinked output is written where it points
    folder = target.parent
    if target.is_dir():
        raise ValueError(f"{option} {text}: is a folder, expected a file name")
    if target.exists() and not target.is_file():
        raise ValueError(f"{option} {text}: exists and is not a regular file")
    if not folder.exists():
        raise ValueError(f"{option} {text}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{option} {text}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {text}: folder {folder} is not writable")
    return Path(text)


def check_outputs(outputs: Mapping[str, str | os.PathLike | None]) -> dict[str, Path]:
    """``check_output`` for every option given (None: not asked for); two options may not share a file."""
    checked = {option: check_output(option, path) for option, path in outputs.items() if path is not None}
    seen: dict[str, str] = {}
    for option, path in checked.items():
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"{seen[real]} and {option} name the same file {path}")
        seen[real] = option
    return checked


def _temp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")


def remove_stale_temps(path: str | os.PathLike, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temporary files that an interrupted ``atomic_write`` to ``path`` left beside it:
    regular files named ``.<name>.<8 chars>.tmp`` not modified for ``max_age_s``. Returns them."""
    path = Path(os.path.realpath(path))
    pattern, now, removed = _temp_pattern(path.name), time.time(), []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if not pattern.fullmatch(name):
            continue
        candidate = path.parent / name
        try:
            info = candidate.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= max_age_s:
                candidate.unlink()
                removed.append(candidate)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


_WHY = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.EFBIG: "file too large for the file system"}


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], what: str = "file") -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any moment leaves the previous file or the new one. An OSError while writing raises
    SaveError naming the path, the cause and whether a previous ``what`` is there, intact.
    """
    shown = Path(path)
    path = Path(os.path.realpath(path))
    folder = path.parent
    if not folder.is_dir():
        raise SaveError(errno.ENOENT, f"cannot save {shown}: folder {folder} does not exist")
    remove_stale_temps(path)
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 minus the umask, as open() does
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, SaveError):
            before = (f"the previous {what} at {shown} is intact" if path.is_file()
                      else f"no {what} was written at {shown}")
            cause = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
            raise SaveError(exc.errno, f"cannot save {shown}: {cause}; {before}") from exc
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # the rename is done; a folder that cannot be opened cannot be fsync'ed either
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is atomic
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- reading


def existing_file(path: str | os.PathLike, error: type[Exception] = ArrayFileError) -> Path:
    """``path`` when it is a readable regular file, else ``error`` saying what it is."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, not a file")
    if not path.exists():
        raise error(f"{path}: no such file")
    if not path.is_file():
        raise error(f"{path}: not a regular file")
    return path


def describe_start(head: bytes) -> str:
    """What a file that starts with ``head`` looks like, for messages: "an empty file", "a text file"..."""
    if not head:
        return "an empty file"
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if head.startswith(_ZIP_MAGICS):
        return "a zip archive"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle, which gpudnn never loads"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not only a character cut at the end of ``head``
            return f"a binary file (it starts with {head[:8].hex(' ')})"
    return "a text file"


def _head(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _npy_array(f: IO[bytes], size: int, where: str) -> np.ndarray:
    """The array of the .npy stream ``f`` of ``size`` bytes; ``where`` names it in messages."""
    if f.read(6) != _NPY_MAGIC:
        raise ArrayFileError(f"{where}: not a .npy array (wrong magic number)")
    version = tuple(f.read(2))
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ArrayFileError(f"{where}: .npy format version {version}, gpudnn reads 1.0 and 2.0")
    try:
        shape, fortran, dtype = readers[version](f, max_header_size=_MAX_NPY_HEADER)
    except Exception as exc:  # NumPy's header parser raises ValueError, SyntaxError, tokenize errors...
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ArrayFileError(f"{where}: damaged .npy header ({detail})") from None
    if dtype.hasobject:
        raise ArrayFileError(f"{where}: holds Python objects (dtype {dtype}), which gpudnn never loads; "
                             "only numeric arrays are read")
    count = math.prod(shape)
    declared, present = count * dtype.itemsize, size - f.tell()
    if declared != present:
        problem = "truncated" if present < declared else "unexpected trailing data"
        raise ArrayFileError(f"{where}: {problem}: the header declares shape {shape} of {dtype} ({declared} bytes), "
                             f"the file holds {max(present, 0)}")
    buffer = bytearray(declared)
    if f.readinto(buffer) != declared:
        raise ArrayFileError(f"{where}: truncated: fewer data bytes than its size says")
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """The array of a .npy file, never unpickled; any problem is an ArrayFileError naming the file."""
    path = existing_file(path)
    try:
        with open(path, "rb") as f:
            if not f.read(6).startswith(_NPY_MAGIC):
                raise ArrayFileError(f"{path}: not a .npy array: {describe_start(_head(path))}")
            f.seek(0)
            return _npy_array(f, path.stat().st_size, str(path))
    except OSError as exc:
        raise ArrayFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive by name, never unpickled.

    Any problem is an ArrayFileError naming the file: not a zip archive (saying what it is), a zip
    member that is not a .npy array, a truncated or damaged archive, an array of Python objects.
    """
    path = existing_file(path)
    try:
        head = _head(path)
        if not head.startswith(_ZIP_MAGICS):
            raise ArrayFileError(f"{path}: not an .npz archive: {describe_start(head)}")
        arrays = {}
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if not info.filename.endswith(".npy"):
                    raise ArrayFileError(f"{path}: a zip archive but not an .npz: member {info.filename!r} is not "
                                         "a .npy array")
                most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO)
                if info.file_size > most or info.compress_size > path.stat().st_size:
                    raise ArrayFileError(f"{path}: damaged .npz archive: member {info.filename!r} declares "
                                         f"{info.file_size} bytes, more than its {info.compress_size} stored bytes "
                                         "can hold")
                with archive.open(info) as member:
                    arrays[info.filename[:-4]] = _npy_array(member, info.file_size, f"{path}: array "
                                                            f"{info.filename[:-4]!r}")
        return arrays
    except zipfile.BadZipFile as exc:
        raise ArrayFileError(f"{path}: truncated or damaged .npz archive ({exc})") from None
    except (EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise ArrayFileError(f"{path}: damaged .npz archive ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ArrayFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # zlib.error and friends from a damaged compressed member
        if isinstance(exc, ArrayFileError):
            raise
        raise ArrayFileError(f"{path}: damaged .npz archive ({type(exc).__name__}: {exc})") from None
