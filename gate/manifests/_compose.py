"""Docker Compose files: every image a ``docker compose up`` of this file would pull.

NOTE: https://github.com/compose-spec/compose-spec/blob/main/05-services.md#image
A service's image is its own ``image``, else the one its ``extends`` chain gives
it (from this file or another); a top-level ``include`` brings in other Compose
files, each with its own project directory and ``.env``
(https://github.com/compose-spec/compose-spec/blob/main/14-include.md). Values
are interpolated as Compose does (``_interpolate``), from the shell environment
over ``--env-file`` or the ``.env`` next to the file. A service with only
``build:`` pulls nothing named here; profiles do not matter because any profile
may be deployed. Where the image cannot be determined, the finding says why and
the gate makes it an ERROR.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeGuard

from gate.errors import ManifestError
from gate.manifests._interpolate import interpolate, parse_dotenv
from gate.manifests._model import Finding, Options, Site, clip, finding
from gate.manifests._yaml import Mapping as MappingNode
from gate.manifests._yaml import (
    Node,
    Scalar,
    Sequence,
    compose_all,
    first,
    get,
    is_null,
    items,
    value_span,
)
from gate.result import Location

KIND = "compose"
MAX_FILES = 64
"""Files one Compose model may pull in through extends and include; far above real use."""
DOTENV = ".env"
_OWN_PREFIX = "SEALGATE_"
_TOP_LEVEL = {"version", "name", "include", "services", "networks", "volumes", "configs", "secrets"}
"""NOTE: https://github.com/compose-spec/compose-spec/blob/main/spec.md (top-level elements)."""


@dataclass(frozen=True)
class Loaded:
    """Another file, read with the same rules as the ones named on the command line."""

    name: str
    """The path as reported (joined to the referring file's directory)."""
    real: str
    text: str


Loader = Callable[[str], Loaded | None]
"""Reads a path (None when it does not exist); raises ManifestError as the file reader does."""


def is_compose(document: Node) -> TypeGuard[MappingNode]:
    """A top-level mapping with a ``services`` mapping and no Kubernetes ``kind``.

    A file with only ``include`` counts when every top-level key is a Compose
    one: a ``.gitlab-ci.yml`` has an ``include`` list too, and is not Compose.
    """
    if not isinstance(document, MappingNode):
        return False
    if first(document, "kind") is not None or first(document, "apiVersion") is not None:
        return False
    if isinstance(first(document, "services"), MappingNode):
        return True
    return isinstance(first(document, "include"), Sequence) and all(
        name in _TOP_LEVEL or name.startswith("x-") for name, _ in items(document)
    )


def project_env(directory: str, options: Options, load: Loader) -> dict[str, str]:
    """Compose's variables for a project in ``directory``: the shell over the env file(s)."""
    shell = os.environ if options.environ is None else options.environ
    # Sealgate's own settings (registry password, key passphrase) are never Compose
    # variables: a manifest in a pull request must not be able to echo them into a report.
    environ = {k: v for k, v in shell.items() if not k.startswith(_OWN_PREFIX)}
    if options.env_files is not None:
        paths = [(path, True) for path in options.env_files]
    else:
        paths = [(os.path.join(directory, DOTENV), False)]
    return {**_dotenv(paths, environ, load), **environ}


def _dotenv(paths: list[tuple[str, bool]], env: dict[str, str], load: Loader) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, required in paths:
        loaded = load(path)
        if loaded is None:
            if required:
                raise ManifestError("no such env file", file=path)
            continue
        out.update(parse_dotenv(loaded.text, loaded.name, {**out, **env}))
    return out


@dataclass
class _Model:
    """One Compose file as Compose sees it: its text, its services, and its variables."""

    name: str
    real: str | None
    text: str
    document: MappingNode
    directory: str
    env: Mapping[str, str]


@dataclass
class _Reader:
    """Walks one Compose file and whatever it extends and includes."""

    load: Loader
    files: dict[tuple[str, str], _Model] = field(default_factory=dict)
    """Models read so far, by (real path, directory); bounded by MAX_FILES."""

    def sites(self, model: _Model, chain: tuple[str, ...] = ()) -> list[Site]:
        """Every image in ``model``: included files first (as Compose merges), then services."""
        out: list[Site] = []
        for included, line in self._includes(model):
            key = included.real or included.name
            if key in chain:
                raise ManifestError(
                    f"include loops back to {clip(os.path.basename(included.name))}",
                    file=model.name,
                    line=line,
                )
            for inner in self.sites(included, (*chain, key)):
                # Text in another file: reported there, edited only by pinning that file.
                out.append(Site(inner.finding, None, inner.origin or included.real))
        services = get(model.document, "services", file=model.name)
        if services is None or is_null(services):
            return out
        if not isinstance(services, MappingNode):
            raise ManifestError("services must be a mapping", file=model.name, line=services.line)
        for name, _ in items(services):
            found = self._service(model, name, ())
            if found is not None:
                out.append(found)
        return out

    def _service(self, model: _Model, name: str, seen: tuple[tuple[str, str], ...]) -> Site | None:
        """The image of service ``name`` in ``model``, following ``extends``; None if build-only."""
        services = get(model.document, "services", file=model.name)
        service = get(services, name, file=model.name)
        label = f"service {clip(name)}"
        if service is None or is_null(service):
            return None
        if not isinstance(service, MappingNode):
            raise ManifestError(f"{label} is not a mapping", file=model.name, line=service.line)
        image = get(service, "image", file=model.name)
        if image is not None and not is_null(image):
            if not isinstance(image, Scalar):
                raise ManifestError(
                    f"{label}: image must be a string", file=model.name, line=image.line
                )
            return self._image_site(model, image, label)
        extends = get(service, "extends", file=model.name)
        if extends is None or is_null(extends):
            return None  # build-only: nothing pulled from a registry by this name
        return self._extended(model, name, extends, seen)

    def _extended(
        self, model: _Model, name: str, extends: Node, seen: tuple[tuple[str, str], ...]
    ) -> Site | None:
        label = f"service {clip(name)}"
        base_node: Node | None
        file_node: Node | None
        if isinstance(extends, Scalar):
            base_node, file_node = extends, None
        elif isinstance(extends, MappingNode):
            base_node = get(extends, "service", file=model.name)
            file_node = get(extends, "file", file=model.name)
        else:
            base_node = file_node = None
        if not isinstance(base_node, Scalar) or not (
            file_node is None or isinstance(file_node, Scalar)
        ):
            raise ManifestError(
                f"{label}: extends needs a service name (and optionally a file)",
                file=model.name,
                line=extends.line,
            )
        base = interpolate(base_node.value, model.env)
        path = interpolate(file_node.value, model.env) if file_node is not None else None
        for part in (base, path):
            if part is not None and part.value is None:
                return self._undetermined(model, base_node.value, extends.line, label, part.problem)
        assert base.value is not None
        other = model
        if path is not None:
            assert path.value is not None
            other = self._open(os.path.join(model.directory, path.value), model, extends.line)
            other = replace(other, env=model.env)  # extends shares the project's variables
        key = (other.real or other.name, base.value)
        if key in seen:
            raise ManifestError(
                f"{label}: extends loops back to service {clip(base.value)}",
                file=model.name,
                line=extends.line,
            )
        services = get(other.document, "services", file=other.name)
        if get(services, base.value, file=other.name) is None:
            raise ManifestError(
                f"{label} extends service {clip(base.value)}, which "
                f"{clip(os.path.basename(other.name))} does not define",
                file=model.name,
                line=extends.line,
            )
        site = self._service(other, base.value, (*seen, key))
        if site is None:
            return None
        context = f"{label} (extends {clip(base.value)})"
        found = replace(site.finding, context=context)
        if other is model:
            return Site(found, site.span, site.origin)
        return Site(found, None, site.origin or other.real)

    def _image_site(self, model: _Model, image: Scalar, label: str) -> Site:
        resolved = interpolate(image.value, model.env)
        if resolved.value is None:
            return self._undetermined(model, image.value, image.line, label, resolved.problem)
        found = finding(
            image.value,
            file=model.name,
            line=image.line,
            kind=KIND,
            context=label,
            resolved=resolved.value,
        )
        span = value_span(model.text, image) if "$" not in image.value else None
        return Site(found, span)

    def _undetermined(
        self, model: _Model, text: str, line: int, label: str, problem: str | None
    ) -> Site:
        location = Location(model.name, line)
        return Site(Finding(text, None, location, KIND, label, problem), None)

    def _includes(self, model: _Model) -> list[tuple[_Model, int]]:
        """The Compose files ``include`` names, each as its own project."""
        node = get(model.document, "include", file=model.name)
        if node is None or is_null(node):
            return []
        if not isinstance(node, Sequence):
            raise ManifestError("include must be a list", file=model.name, line=node.line)
        out: list[tuple[_Model, int]] = []
        for entry in node.items:
            paths, project_dir, env_files = self._include_entry(model, entry)
            for path in paths:
                full = os.path.join(model.directory, path)
                directory = (
                    os.path.join(model.directory, project_dir)
                    if project_dir is not None
                    else os.path.dirname(full)
                )
                included = self._open(full, model, entry.line, directory=directory)
                files = (
                    [(os.path.join(model.directory, f), True) for f in env_files]
                    if env_files is not None
                    else [(os.path.join(directory, DOTENV), False)]
                )
                # NOTE: the including project's variables win over the included .env defaults.
                env = {**_dotenv(files, dict(model.env), self.load), **model.env}
                out.append((replace(included, env=env), entry.line))
        return out

    def _include_entry(
        self, model: _Model, entry: Node
    ) -> tuple[list[str], str | None, list[str] | None]:
        """(paths, project_directory, env_file) of one include entry, interpolated."""
        if isinstance(entry, Scalar):
            return [self._text(model, entry)], None, None
        if not isinstance(entry, MappingNode):
            raise ManifestError(
                "an include entry must be a path or a mapping", file=model.name, line=entry.line
            )
        paths = self._strings(model, get(entry, "path", file=model.name), entry.line, "path")
        if not paths:
            raise ManifestError("an include entry needs a path", file=model.name, line=entry.line)
        directory = get(entry, "project_directory", file=model.name)
        env_node = get(entry, "env_file", file=model.name)
        return (
            paths,
            self._text(model, directory) if isinstance(directory, Scalar) else None,
            None if env_node is None else self._strings(model, env_node, entry.line, "env_file"),
        )

    def _strings(self, model: _Model, node: Node | None, line: int, what: str) -> list[str]:
        if node is None or is_null(node):
            return []
        nodes = node.items if isinstance(node, Sequence) else (node,)
        if not all(isinstance(n, Scalar) for n in nodes):
            raise ManifestError(f"include {what} must be text", file=model.name, line=line)
        return [self._text(model, n) for n in nodes if isinstance(n, Scalar)]

    def _text(self, model: _Model, node: Scalar) -> str:
        """An interpolated path: one that cannot be determined stops the run (exit 2)."""
        resolved = interpolate(node.value, model.env)
        if resolved.value is None:
            raise ManifestError(
                f"cannot tell which file this names: {resolved.problem}",
                file=model.name,
                line=node.line,
            )
        return resolved.value

    def _open(
        self, path: str, referrer: _Model, line: int, *, directory: str | None = None
    ) -> _Model:
        loaded = self.load(path)
        if loaded is None:
            named = os.path.relpath(path, referrer.directory)
            raise ManifestError(
                f"names {clip(named)}, which does not exist", file=referrer.name, line=line
            )
        directory = directory if directory is not None else os.path.dirname(path)
        key = (loaded.real, directory)
        if key in self.files:
            return self.files[key]
        if len(self.files) >= MAX_FILES:
            raise ManifestError(
                f"extends and include name more than {MAX_FILES} files",
                file=referrer.name,
                line=line,
            )
        document = next(iter(compose_all(loaded.text, loaded.name)), None)
        if not isinstance(document, MappingNode):
            raise ManifestError("not a Compose file (expected a mapping)", file=loaded.name)
        model = _Model(loaded.name, loaded.real, loaded.text, document, directory, {})
        self.files[key] = model
        return model


def find(
    document: MappingNode,
    text: str,
    file: str,
    *,
    directory: str,
    real: str | None,
    options: Options,
    load: Loader,
) -> list[Site]:
    """Every image one Compose document pulls, included files first, then services in order."""
    env = project_env(directory, options, load)
    model = _Model(file, real, text, document, directory, env)
    return _Reader(load).sites(model, (real or file,))
