"""Which files to read, how to read them safely, and which finder reads each."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import AnyStr, TextIO

from gate.errors import ManifestError
from gate.manifests import _compose, _dockerfile, _kubernetes, _lists
from gate.manifests._model import Options, Site
from gate.manifests._yaml import compose_all

MAX_FILE_BYTES = 32 * 1024 * 1024
"""Far beyond any deploy manifest; bigger input is refused rather than read into memory."""
STDIN = "-"
_CHUNK = 1 << 20

_SKIP_DIRS = {"node_modules"}
_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_FROM_LINE = re.compile(r"^[ \t\ufeff]*FROM[ \t]+\S", re.IGNORECASE | re.MULTILINE)
_FIRST_INSTRUCTION = re.compile(r"^[ \t\ufeff]*(?:FROM|ARG)[ \t]", re.IGNORECASE)
_DEFAULT = Options()


@dataclass(frozen=True)
class Source:
    """A file to read: the name to report and the path to open (None for stdin)."""

    name: str
    path: str | None
    kind: str | None
    """``yaml``, ``dockerfile`` or ``list`` when the name says so; None to sniff the content."""


@dataclass(frozen=True)
class Read:
    """A file's bytes and the ``fstat`` of the handle they were read from (pin compares it)."""

    data: bytes
    stat: os.stat_result


def expand(paths: Sequence[str], options: Options = _DEFAULT) -> list[Source]:
    """Files named or found under the named directories, each once, in a stable order.

    A symbolic link, named or met while walking, is an error unless
    ``options.follow_symlinks``: a link can point anywhere (a credentials
    file), and skipping it silently would leave images unchecked.
    """
    out: list[Source] = []
    seen: set[str] = set()
    for given in paths:
        if given == STDIN:
            if STDIN in seen:
                raise ManifestError("standard input is named twice", file=STDIN)
            seen.add(STDIN)
            out.append(Source(STDIN, None, None))
            continue
        info = _stat(given, options)
        if stat.S_ISDIR(info.st_mode):
            for path in _walk(given, options.follow_symlinks):
                kind = kind_by_name(os.path.basename(path), walked=True)
                if kind is None:
                    continue
                if not options.follow_symlinks and os.path.islink(path):
                    raise _link_error(path)
                if _first(path, seen):
                    out.append(Source(path, path, kind))
        elif _first(given, seen):
            out.append(Source(given, given, kind_by_name(os.path.basename(given), walked=False)))
    return out


def _stat(given: str, options: Options) -> os.stat_result:
    """``given``'s status, refusing a link unless links are followed."""
    path = given.rstrip("/") or "/"  # "link/" would resolve the link before lstat sees it
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            if not options.follow_symlinks:
                raise _link_error(given)
            info = os.stat(path)
    except FileNotFoundError as e:
        raise ManifestError("no such file or directory", file=given) from e
    except OSError as e:
        raise ManifestError(f"cannot read: {e.strerror or e}", file=given) from e
    return info


def _link_error(path: str) -> ManifestError:
    return ManifestError(
        "is a symbolic link, which Sealgate does not follow",
        file=path,
        hint="pass --follow-symlinks to read through links",
    )


def _first(path: str, seen: set[str]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        return False
    seen.add(real)
    return True


def _walk(top: str, follow: bool) -> Iterator[str]:
    """Files under ``top`` (prefixed as the user wrote it), sorted, hidden entries skipped.

    A linked directory is an error unless ``follow``; when following, each real
    directory is entered once, so a link loop cannot trap the walk.
    """

    def fail(error: OSError) -> None:
        raise ManifestError(f"cannot read directory: {error.strerror}", file=error.filename)

    visited = {os.path.realpath(top)}
    for root, dirs, files in os.walk(top, onerror=fail, followlinks=follow):
        keep: list[str] = []
        for name in sorted(dirs):
            if name.startswith(".") or name in _SKIP_DIRS:
                continue
            path = os.path.join(root, name)
            if os.path.islink(path) and not follow:
                raise _link_error(path)
            real = os.path.realpath(path)
            if real not in visited:
                visited.add(real)
                keep.append(name)
        dirs[:] = keep
        for file in sorted(files):
            if not file.startswith("."):
                yield os.path.join(root, file)


def kind_by_name(name: str, *, walked: bool) -> str | None:
    """The finder a file name implies; None means sniff (named) or skip (walked).

    In a walked directory only ``*.txt`` files with "image" in their name are
    lists, so ``requirements.txt`` and friends are not misread as image lists.
    """
    lower = name.lower()
    if lower.endswith(_YAML_SUFFIXES):
        return "yaml"
    if lower.endswith(".dockerignore"):
        return None
    if "dockerfile" in lower or "containerfile" in lower:
        return "dockerfile"
    if lower.endswith(".txt") and (not walked or "image" in lower):
        return "list"
    return None


def read(source: Source, stdin: TextIO | None, options: Options = _DEFAULT) -> str:
    """The text of ``source``, refusing anything over MAX_FILE_BYTES."""
    if source.path is None:
        if stdin is None:
            raise ManifestError("standard input was named but none was given", file=STDIN)
        return "".join(_chunks(stdin.read, STDIN))
    return decode(read_file(source.name, source.path, follow=options.follow_symlinks).data)


def read_file(name: str, path: str, *, follow: bool) -> Read:
    """The bytes of ``path``, capped at MAX_FILE_BYTES; OSError becomes ManifestError.

    Opened with ``O_NOFOLLOW`` unless ``follow``, so a link swapped in after the
    walk is refused too; only regular files and pipes are read.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        # A pipe (``<(helm template …)``) is opened blocking, to wait for its writer;
        # anything else non-blocking, so a device or a FIFO swapped in cannot hang us.
        if not stat.S_ISFIFO((os.stat if follow else os.lstat)(path).st_mode):
            flags |= os.O_NONBLOCK
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise _link_error(name) from e
        if e.errno == errno.ENOENT:
            raise ManifestError("no such file", file=name) from e
        raise ManifestError(f"cannot read: {e.strerror or e}", file=name) from e
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ManifestError("is a directory", file=name)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            raise ManifestError("is not a regular file", file=name)
        os.set_blocking(fd, True)
        try:
            return Read(b"".join(_chunks(handle.read, name)), info)
        except OSError as e:
            raise ManifestError(f"cannot read: {e.strerror or e}", file=name) from e


def _chunks(read: Callable[[int], AnyStr | None], name: str) -> Iterator[AnyStr]:
    """Read in pieces, so the cap is enforced without allocating it up front."""
    total = 0
    while chunk := read(_CHUNK):
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise ManifestError(f"larger than {MAX_FILE_BYTES / 2**20:g} MiB", file=name)
        yield chunk


def decode(data: bytes) -> str:
    """UTF-8 text; stray bytes survive a round trip (surrogateescape), so pin keeps them."""
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def sniff(text: str) -> str:
    """Guess a file's kind from its content: a Dockerfile, a plain list, or YAML."""
    first = next((line for line in text.splitlines() if _significant(line)), "")
    if _FIRST_INSTRUCTION.match(first) and _FROM_LINE.search(text):
        return "dockerfile"
    lines = [_lists.uncomment(line).strip() for line in text.splitlines() if _significant(line)]
    if lines and all(_looks_like_reference(line) for line in lines):
        return "list"
    return "yaml"


def _significant(line: str) -> bool:
    body = line.strip(" \t\ufeff")
    return bool(body) and not body.startswith("#")


def _looks_like_reference(line: str) -> bool:
    return (
        bool(line)
        and len(line.split()) == 1
        and not line.endswith(":")
        and line[0] not in "-[{\"'&*!|>%@`"
    )


def scan(
    text: str, name: str, kind: str, path: str | None = None, options: Options = _DEFAULT
) -> list[Site]:
    """Run the finder for ``kind`` over ``text``; ``path`` (None for stdin) places Compose files."""
    if kind == "dockerfile":
        return _dockerfile.find(text, name)
    if kind == "list":
        return _lists.find(text, name)
    sites: list[Site] = []
    for document in compose_all(text, name):
        if _compose.is_compose(document):
            sites.extend(
                _compose.find(
                    document,
                    text,
                    name,
                    directory=os.path.dirname(path) if path is not None else os.curdir,
                    real=os.path.realpath(path) if path is not None else None,
                    options=options,
                    load=_loader(options),
                )
            )
        elif _kubernetes.is_kubernetes(document):
            sites.extend(_kubernetes.find(document, text, name))
    return sites


def _loader(options: Options) -> _compose.Loader:
    """How Compose's extends, include and .env files are read: as any named file is."""

    def load(path: str) -> _compose.Loaded | None:
        try:
            os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ManifestError(f"cannot read: {e.strerror or e}", file=path) from e
        data = read_file(path, path, follow=options.follow_symlinks).data
        return _compose.Loaded(path, os.path.realpath(path), decode(data))

    return load
