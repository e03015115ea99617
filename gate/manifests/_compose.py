"""Docker Compose files: ``services.<name>.image``.

NOTE: https://github.com/compose-spec/compose-spec/blob/main/05-services.md#image
A service with only ``build:`` has no image to check; profiles do not matter
because any profile may be deployed. ``${VAR}`` interpolation is not guessed
at: such references are reported as unresolved (render with ``docker compose config``).
"""

from __future__ import annotations

from typing import TypeGuard

from gate.errors import ManifestError
from gate.manifests._model import Site, finding
from gate.manifests._yaml import Mapping, Node, Scalar, first, get, is_null, items, value_span

KIND = "compose"


def is_compose(document: Node) -> TypeGuard[Mapping]:
    """A top-level mapping with a ``services`` mapping and no Kubernetes ``kind``."""
    if not isinstance(document, Mapping):
        return False
    if first(document, "kind") is not None or first(document, "apiVersion") is not None:
        return False
    return isinstance(first(document, "services"), Mapping)


def find(document: Mapping, text: str, file: str) -> list[Site]:
    """Every service image in one Compose document, in service order."""
    services = get(document, "services", file=file)
    assert isinstance(services, Mapping)
    sites: list[Site] = []
    for name, service in items(services):
        if service is None or is_null(service):
            continue
        if not isinstance(service, Mapping):
            raise ManifestError(f"service '{name}' is not a mapping", file=file, line=service.line)
        image = get(service, "image", file=file)
        if image is None or is_null(image):
            continue  # build-only (or extends) service: nothing pulled from a registry
        if not isinstance(image, Scalar):
            raise ManifestError(
                f"service '{name}': image must be a string", file=file, line=image.line
            )
        sites.append(
            Site(
                finding(
                    image.value,
                    file=file,
                    line=image.line,
                    kind=KIND,
                    context=f"service {name}",
                ),
                value_span(text, image),
            )
        )
    return sites
