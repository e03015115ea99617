"""Finding image references in deploy files, and pinning them to digests in place.

Reads Docker Compose files, Kubernetes YAML (multi-document streams, Lists,
every pod template), rendered Helm/kustomize output on stdin, plain lists and
Dockerfiles, and reports each reference with its file and line. This module
does no network I/O: ``pin_files`` is handed a ``resolve`` function.

YAML is read as a node graph from parser events (see ``_yaml``): never
constructed into Python objects, so anchors and aliases cannot blow up memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from gate.manifests._files import MAX_FILE_BYTES, expand, read, scan, sniff
from gate.manifests._kubernetes import Pointer, find_in_object
from gate.manifests._model import CANNOT_TELL, Finding, Options, PinChange, clip
from gate.manifests._pin import Resolver, pin_files

__all__ = [
    "CANNOT_TELL",
    "MAX_FILE_BYTES",
    "Finding",
    "Options",
    "PinChange",
    "Pointer",
    "Resolver",
    "clip",
    "find_images",
    "find_object_images",
    "pin_files",
]


def find_images(
    paths: Sequence[str], *, stdin: TextIO | None = None, options: Options | None = None
) -> list[Finding]:
    """Every image reference in ``paths`` (files, directories, ``-`` for ``stdin``), in order.

    Directories are walked in sorted order, skipping hidden entries and
    ``node_modules``; files whose names say nothing are sniffed. Raises
    ManifestError (exit 2) for unreadable or invalid files, references that are
    not references, symbolic links (unless ``options.follow_symlinks``), and
    YAML bombs. References whose image cannot be determined (unset variables,
    templates, build args without defaults) come back with ``reference=None``
    and a ``problem``: the gate makes those ERROR results.
    """
    options = options or Options()
    findings: list[Finding] = []
    for source in expand(paths, options):
        text = read(source, stdin, options)
        kind = source.kind or sniff(text)
        findings.extend(
            site.finding for site in scan(text, source.name, kind, source.path, options)
        )
    return findings


def find_object_images(obj: Any, *, name: str) -> list[tuple[Finding, Pointer]]:
    """Every image reference in one parsed Kubernetes object, with its JSON Pointer tokens.

    The admission webhook's entry: the same walker as ``find_images`` (Pods,
    every pod template, init and ephemeral containers), over a dict instead of
    a file. ``name`` labels the findings. Raises ManifestError for an image that
    is not a string or not a reference.
    """
    return [(site.finding, at) for site, at in find_in_object(obj, name)]
