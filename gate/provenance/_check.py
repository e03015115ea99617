"""Whether a verified statement satisfies a policy's attestation requirement (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gate.provenance._statement import (
    PREDICATE_ALIASES,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    Statement,
)


@dataclass(frozen=True)
class AttestationCheck:
    """One attestation a policy rule requires (DESIGN.md, "Policy")."""

    predicate_type: str
    """A predicate type URI or an alias from PREDICATE_ALIASES."""
    builder: str | None = None
    """Exact builder ID, or a prefix ending in ``*``."""
    source: str | None = None
    """Source repository URL, or a prefix of one at a ``/`` boundary (an owner)."""


def accepted_predicate_types(name_or_uri: str) -> frozenset[str]:
    """The predicate types that satisfy ``name_or_uri``: an alias may stand for several."""
    if name_or_uri == "slsaprovenance":
        return frozenset({SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02})
    return frozenset({PREDICATE_ALIASES.get(name_or_uri, name_or_uri)})


def check_attestation(statement: Statement, digest: str, check: AttestationCheck) -> str | None:
    """None when ``statement`` satisfies ``check`` for ``digest``, else one sentence why not."""
    if not statement.covers(digest):
        return f"the attestation is not about {digest}: its subjects have other digests"
    accepted = accepted_predicate_types(check.predicate_type)
    if statement.predicate_type not in accepted:
        wanted = " or ".join(sorted(accepted))
        return f"the attestation has predicate type {statement.predicate_type}, not {wanted}"
    if check.builder is not None:
        builder = _builder_id(statement)
        if builder is None:
            return (
                f"the attestation names no builder, so it cannot show it came from {check.builder}"
            )
        wanted_builder = check.builder
        if not (
            builder == wanted_builder
            or (wanted_builder.endswith("*") and builder.startswith(wanted_builder[:-1]))
        ):
            return f"the attestation says it was built by {builder}, not {wanted_builder}"
    if check.source is not None:
        source = _source_uri(statement)
        if source is None:
            return f"the attestation names no source repository, so not {check.source}"
        have, want = _normalise_repository(source), _normalise_repository(check.source)
        if not (have == want or have.startswith(want + "/")):
            return f"the attestation says it was built from {source}, not {check.source}"
    return None


def _builder_id(statement: Statement) -> str | None:
    # NOTE: SLSA v1 keeps the builder under runDetails; v0.2 at the top of the predicate.
    predicate = statement.predicate
    found = _dig(predicate, "runDetails", "builder", "id")
    if statement.predicate_type != SLSA_PROVENANCE_V1 and found is None:
        found = _dig(predicate, "builder", "id")
    return found if isinstance(found, str) and found else None


def _source_uri(statement: Statement) -> str | None:
    predicate = statement.predicate
    candidates = [
        _dig(predicate, "buildDefinition", "externalParameters", "workflow", "repository"),
        _dig(predicate, "buildDefinition", "externalParameters", "pipeline", "repository"),
        _dig(predicate, "buildDefinition", "externalParameters", "source"),
        _dig(predicate, "buildDefinition", "externalParameters", "source", "uri"),
        _dig(predicate, "buildDefinition", "resolvedDependencies", 0, "uri"),
        # NOTE: SLSA v0.2: invocation.configSource.uri, then the first material.
        _dig(predicate, "invocation", "configSource", "uri"),
        _dig(predicate, "materials", 0, "uri"),
    ]
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _normalise_repository(uri: str) -> str:
    """``git+https://Host/Owner/Repo.git@refs/x`` → ``host/owner/repo`` for comparison."""
    text = uri.strip().removeprefix("git+")
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text, flags=re.IGNORECASE)
    host, slash, path = text.partition("/")
    path = path.partition("@")[0]  # the ref; an '@' in the host part is ssh's user
    text = (host + slash + path).rstrip("/").removesuffix(".git")
    return text.lower()


def _dig(value: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value
