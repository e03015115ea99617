"""Replacing several files all or nothing, without losing anyone else's edit.

``pin`` may change many files, and a deploy that reads half-pinned files is
worse than one that reads none. So every new file is written first (a temp
file beside the original, with its owner and mode), then each original is
checked to be exactly what was read (no other writer got there meanwhile),
kept as a hard link, and only then are all the temp files renamed into place.
A rename that fails puts back the ones already done from those links. What
remains possible is a crash between renames, or an edit in the instant between
the last check and the renames: no file system offers more without locks that
editors do not take.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from gate.errors import ManifestError

_SUFFIX = ".sealgate-pin"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Original:
    """A file as pin read it: the path to replace, its bytes, and their ``fstat``."""

    name: str
    """As reported to the user."""
    path: str
    data: bytes
    stat: os.stat_result


def check_writable(original: Original) -> None:
    """Refuse, before any registry lookup, a file that pin could not replace.

    Raises ManifestError for a link, a read-only file, or a directory where no
    file can be created (the temp file must sit beside the original).
    """
    if os.path.islink(original.path):
        raise ManifestError(
            "is a symbolic link; pin does not write through links", file=original.name
        )
    if not stat.S_ISREG(original.stat.st_mode):
        raise ManifestError("is not a regular file; pin rewrites files", file=original.name)
    if not os.access(original.path, os.W_OK):
        raise ManifestError("is read-only; pin rewrites files in place", file=original.name)
    directory = os.path.dirname(original.path) or os.curdir
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ManifestError(
            "cannot be replaced: its directory does not allow creating the new file beside it",
            file=original.name,
        )


def replace_all(writes: Sequence[tuple[Original, bytes]]) -> None:
    """Replace each original with its new bytes, all or nothing; raise ManifestError if not."""
    staged: list[tuple[Original, str]] = []
    kept: list[tuple[Original, str]] = []
    done: list[Original] = []
    try:
        for original, data in writes:
            staged.append((original, _stage(original, data)))
        for original, _ in staged:
            _unchanged(original)
        for original, _ in staged:
            kept.append((original, _keep(original)))
        for original, temp in staged:
            _step(original, "cannot replace", partial(os.replace, temp, original.path))
            done.append(original)
    except BaseException:
        for original, backup in kept:
            if original in done:
                with contextlib.suppress(OSError):
                    os.replace(backup, original.path)
        _remove(temp for _, temp in staged)
        _remove(backup for _, backup in kept)
        raise
    _remove(backup for _, backup in kept)


def _stage(original: Original, data: bytes) -> str:
    """The new content in a temp file beside the original, with its owner and mode."""
    directory, base = os.path.split(original.path)
    temp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}{_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = _step(original, "cannot write", lambda: os.open(temp, flags, 0o600))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            info = original.stat
            if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
                _step(
                    original,
                    "cannot keep its owner",
                    lambda: os.fchown(out.fileno(), info.st_uid, info.st_gid),
                )
            os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode))  # after chown, which may clear bits
            os.fsync(out.fileno())
    except BaseException:
        _remove([temp])
        raise
    return temp


def _unchanged(original: Original) -> None:
    """The file must still be the one read: same inode, size, mtime and bytes."""
    try:
        now = os.lstat(original.path)
        fd = os.open(original.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(len(original.data) + 1)
    except OSError as e:
        raise _changed(original) from e
    then = original.stat
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
        then.st_dev,
        then.st_ino,
        then.st_size,
        then.st_mtime_ns,
    ) or data != original.data:
        raise _changed(original)


def _changed(original: Original) -> ManifestError:
    return ManifestError(
        "changed on disk while pin was asking the registry; nothing was written, run pin again",
        file=original.name,
    )


def _keep(original: Original) -> str:
    """The original, to put back if a later rename fails: a hard link, else a copy."""
    directory, base = os.path.split(original.path)
    backup = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.orig{_SUFFIX}")
    try:
        os.link(original.path, backup, follow_symlinks=False)
    except OSError:  # a file system without hard links: the bytes we read are the original
        return _stage(original, original.data)
    return backup


def _step(original: Original, what: str, action: Callable[[], _T]) -> _T:
    try:
        return action()
    except OSError as e:
        reason = e.strerror or errno.errorcode.get(e.errno or 0, str(e))
        raise ManifestError(f"{what}: {reason}; nothing was written", file=original.name) from e


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
