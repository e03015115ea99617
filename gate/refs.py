"""Image references, digests and image sources (pure).

Follows Docker's reference grammar (distribution/reference ``regexp.go``) and
its normalisation: ``nginx`` is ``docker.io/library/nginx:latest``. A source
adds the scheme prefixes of DESIGN.md ("Image sources"): bare registry
references, ``docker://`` (local engine), ``oci:`` and ``docker-archive:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gate.errors import InvalidReferenceError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# NOTE: distribution/reference caps the whole name (registry + path) at 255 characters.
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX = re.compile(r"[a-f0-9]+")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


def parse_digest(text: str) -> str:
    """Return ``text`` if it is a well-formed digest such as ``sha256:<64 hex>``."""
    if not _DIGEST.fullmatch(text):
        raise InvalidReferenceError(
            f"'{text}' is not a digest: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    algorithm, _, encoded = text.partition(":")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise InvalidReferenceError(
            f"digest '{text}' uses unsupported algorithm '{algorithm}': "
            "use sha256, sha384 or sha512"
        )
    if not _HEX.fullmatch(encoded):
        raise InvalidReferenceError(f"digest '{text}' must be lowercase hex after '{algorithm}:'")
    if len(encoded) != expected:
        raise InvalidReferenceError(
            f"digest '{text}' has {len(encoded)} hex digits; {algorithm} needs {expected}"
        )
    return text


@dataclass(frozen=True, order=True)
class Repository:
    """A repository in a registry: where manifests, blobs and tags live."""

    registry: str
    """Registry host with optional port, e.g. ``docker.io`` or ``127.0.0.1:5000``."""
    path: str
    """Repository path, e.g. ``library/nginx``."""

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


@dataclass(frozen=True, order=True)
class Reference:
    """A normalised image reference: always a registry, a path, and a tag or digest."""

    registry: str
    path: str
    tag: str | None = None
    """The tag, or None when only a digest was given."""
    digest: str | None = None

    @property
    def repository(self) -> Repository:
        return Repository(self.registry, self.path)

    @property
    def name(self) -> str:
        """``registry/path`` without tag or digest."""
        return f"{self.registry}/{self.path}"

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.path, self.tag, parse_digest(digest))

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _canonical_host(host: str) -> str:
    """One spelling per registry: ``ghcr.io:0443`` and ``ghcr.io:443`` are ``ghcr.io``.

    Policies match registries as text, so two spellings of one host must not
    pick two rules. Leading zeros go; the HTTPS port goes, except on loopback,
    where registries are spoken to over plain HTTP (and 443 is a port like any).
    """
    head, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or (":" in head and not head.endswith("]")):
        return host  # no port, or an IPv6 address without brackets
    number = str(int(port))
    name = head.lower()
    loopback = name in ("localhost", "[::1]") or name.startswith(("127.", "localhost."))
    loopback = loopback or name.endswith(".localhost")
    if number == "443" and not loopback:
        return name
    return f"{name}:{number}"


def _split_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into registry and path the way Docker does (``splitDockerDomain``)."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if first.lower() != first and not first.startswith("["):
            # Docker keeps host case, but a lowercase check makes 'Docker.io' and 'docker.io'
            # one registry.
            first = first.lower()
        registry, path = _canonical_host(first), rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return registry, path


def parse(text: str) -> Reference:
    """Parse and normalise a registry image reference.

    Raises InvalidReferenceError with a sentence saying what is wrong.
    """
    original = text
    if not text or text.strip() != text:
        raise InvalidReferenceError(
            f"'{original}' is not an image reference: it is empty or has spaces"
        )
    if "://" in text:
        raise InvalidReferenceError(
            f"'{original}' is not a registry reference: drop the scheme "
            "(use docker:// only for images in the local engine)"
        )

    digest: str | None = None
    if "@" in text:
        text, _, digest_text = text.partition("@")
        digest = parse_digest(digest_text)

    tag: str | None = None
    # A tag follows the last ':' after the last '/'; an earlier ':' is a registry port.
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                f"'{original}' has an invalid tag '{tag}': tags are 1-128 characters of "
                "letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )

    if not text:
        raise InvalidReferenceError(f"'{original}' has no repository name")
    if len(text) > NAME_TOTAL_MAX:
        raise InvalidReferenceError(
            f"'{original[:40]}…' is too long: "
            f"a repository name may have at most {NAME_TOTAL_MAX} characters"
        )
    registry, path = _split_domain(text)
    if registry != DEFAULT_REGISTRY and not _DOMAIN.fullmatch(registry):
        raise InvalidReferenceError(f"'{original}' has an invalid registry host '{registry}'")
    for component in path.split("/"):
        if not component:
            raise InvalidReferenceError(f"'{original}' has an empty path component")
        if not _PATH_COMPONENT.fullmatch(component):
            why = (
                "repository names must be lowercase"
                if component.lower() != component
                else "use lowercase letters, digits and single '.', '_', '__' or '-' separators"
            )
            raise InvalidReferenceError(
                f"'{original}' has an invalid path component '{component}': {why}"
            )

    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


class SourceKind(StrEnum):
    """Where an image comes from (DESIGN.md, "Image sources")."""

    REGISTRY = "registry"
    DOCKER = "docker"
    OCI = "oci"
    DOCKER_ARCHIVE = "docker-archive"


@dataclass(frozen=True)
class Source:
    """An image source as written by the user, parsed."""

    kind: SourceKind
    text: str
    """Exactly what the user wrote."""
    reference: Reference | None = None
    """For registry sources: the normalised reference."""
    name: str | None = None
    """For docker:// sources: the name or ID given to the engine."""
    path: str | None = None
    """For oci: and docker-archive: sources: the file system path."""


_PREFIXES = {
    "docker://": SourceKind.DOCKER,
    "oci:": SourceKind.OCI,
    "docker-archive:": SourceKind.DOCKER_ARCHIVE,
}


def parse_source(text: str) -> Source:
    """Parse an image source: a bare registry reference or one with a scheme prefix."""
    for prefix, kind in _PREFIXES.items():
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if not rest:
                raise InvalidReferenceError(f"'{text}' names no image after '{prefix}'")
            if kind is SourceKind.DOCKER:
                # The engine accepts names, short IDs and full IDs; check names only.
                if not (_HEX.fullmatch(rest) or rest.startswith("sha256:")):
                    parse(rest)
                return Source(kind, text, name=rest)
            return Source(kind, text, path=rest)
    return Source(SourceKind.REGISTRY, text, reference=parse(text))
