"""The trust policy: load and validate one YAML file, and pick the rule for an image.

Validation works on PyYAML's composed node graph rather than on loaded Python
objects, so every error can name the file, line and key, and so an alias bomb
cannot expand. Deciding is left to ``verify.decide``; this module only says
which rule applies and what it requires.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gate import keys
from gate.descriptors import digest_of
from gate.errors import KeyLoadError, PolicyError, SealgateError, UsageError
from gate.provenance import AttestationCheck
from gate.refs import Reference
from gate.scope import Namespaces, Scope, parse_namespaces
from gate.scope import parse as parse_scope

if TYPE_CHECKING:
    from gate.sigstore import Identity, TrustedRoot

MAX_POLICY_BYTES = 1024 * 1024


class Pinned(StrEnum):
    REQUIRED = "required"
    WARN = "warn"
    OFF = "off"


class Unsupported(StrEnum):
    DENY = "deny"
    WARN = "warn"


class Platforms(StrEnum):
    """How an index's platforms count (``platforms:`` in a rule)."""

    INDEX = "index"
    """A signed index covers its unsigned platforms; a revoked or untrusted one still fails it."""
    EACH = "each"
    """Every platform must be TRUSTED on its own."""


@dataclass(frozen=True)
class TrustedSigner:
    """A signer the policy trusts, with its name and rank: a public key or a keyless identity."""

    name: str
    key: keys.PublicKey | None
    level: int = 0
    label: str | None = None
    identity: Identity | None = None
    """For keyless signers: who the Fulcio certificate must name (issuer, subject, claims)."""


@dataclass(frozen=True)
class Rule:
    """What an image matching ``match`` needs to be TRUSTED."""

    match: str
    signers: tuple[str, ...]
    threshold: int = 1
    min_level: int | None = None
    max_age: timedelta | None = None
    pinned: Pinned = Pinned.REQUIRED
    unsupported: Unsupported = Unsupported.WARN
    attestations: tuple[AttestationCheck, ...] = ()
    platforms: Platforms = Platforms.INDEX
    tlog: bool = False
    """``tlog: required``: a signature counts only with a transparency-log entry."""
    line: int | None = None
    """Where the rule starts in the policy file (for `policy explain`)."""
    namespaces: Namespaces | None = None
    """Admission only: the namespaces the rule applies in (None: all). The gate and the
    watchdog have no namespace and ignore it; see ``Policy.in_namespace``."""

    def matches(self, ref: Reference) -> bool:
        """Whether the rule covers the image's repository.

        Only the repository name counts, never the tag: a tag is text anyone who
        can push chooses, so ``app:try-sandbox`` must not pick a laxer rule than
        ``app:1.0`` for the same digest.
        """
        return _glob(self.match).fullmatch(ref.name) is not None


@dataclass(frozen=True)
class Policy:
    signers: dict[str, TrustedSigner]
    rules: tuple[Rule, ...]
    registries: tuple[str, ...] | None = None
    """Allowed registries; None allows any."""
    default: Rule | None = None
    """The rule for images no rule matches; None denies them."""
    source: str = "<command line>"
    digest: str | None = None
    """sha256 of the policy file bytes, recorded in the signed gate report."""
    explicit: bool = field(default=True)
    trust_roots: tuple[str, ...] = ()
    """``trust.roots``: trusted_root.json files (or ``public-good``/``staging``); () = default."""
    _roots: list[TrustedRoot] = field(default_factory=list, compare=False, repr=False)

    @property
    def roots(self) -> TrustedRoot:
        """The Sigstore trust roots keyless signatures chain to, loaded once (then cached)."""
        if not self._roots:
            from gate.sigstore import resolve_roots

            self._roots.append(resolve_roots(self.trust_roots))
        return self._roots[0]

    scope: Scope = field(default_factory=Scope)
    """What admission checks (``namespaces:``); the gate and the watchdog ignore it."""
    files: tuple[str, ...] = ()
    """The files besides itself it was read from (key files, trust-root files; with no
    ``trust:``, the trust directory and the roots imported into it)."""
    version: str | None = None
    """What a cached verdict depends on: the file's bytes, the keys and identities it trusts,
    the trust roots' bytes. A rotated key file changes it though the policy file did not."""

    def in_namespace(self, namespace: str) -> Policy:
        """The policy as admission applies it in ``namespace``: rules (and the default) whose
        ``namespaces`` do not cover it are left out, so the first *applicable* rule wins.

        Returns ``self`` when every rule applies. The gate and the watchdog never call
        this: they have no namespace, so rule namespaces do not narrow anything there.
        """

        def applies(rule: Rule | None) -> bool:
            return rule is not None and (
                rule.namespaces is None or rule.namespaces.covers(namespace)
            )

        rules = tuple(r for r in self.rules if applies(r))
        default = self.default if applies(self.default) else None
        if len(rules) == len(self.rules) and default is self.default:
            return self
        return replace(self, rules=rules, default=default)

    def rule_for(self, ref: Reference) -> Rule | None:
        return self.rule_for_name(ref.name)

    def rule_for_name(self, repository: str) -> Rule | None:
        """The first rule whose pattern matches the repository name (no tag), else the default."""
        for rule in self.rules:
            if _glob(rule.match).fullmatch(repository) is not None:
                return rule
        return self.default

    def registry_allowed(self, ref: Reference) -> bool:
        return self.registries is None or ref.registry in self.registries

    def signers_for(self, rule: Rule) -> list[TrustedSigner]:
        return [self.signers[name] for name in rule.signers]


def from_identity(identity: Identity, trust_roots: Sequence[str] = ()) -> Policy:
    """The implicit policy of ``verify --certificate-identity …``: that keyless signer."""
    signer = TrustedSigner("keyless", None, identity=identity)
    rule = Rule("**", (signer.name,), threshold=1, pinned=Pinned.OFF)
    pol = Policy({signer.name: signer}, (rule,), explicit=False, trust_roots=tuple(trust_roots))
    pol.roots  # noqa: B018 - a root file that is not one fails now, before any work
    return pol


def from_keys(public_keys: Sequence[keys.PublicKey]) -> Policy:
    """The implicit policy of ``verify --key``: any one of the keys, tags allowed."""
    signers = {
        f"key-{i + 1}": TrustedSigner(f"key-{i + 1}", key) for i, key in enumerate(public_keys)
    }
    rule = Rule("**", tuple(signers), threshold=1, pinned=Pinned.OFF)
    return Policy(signers, (rule,), explicit=False)


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    """``**`` crosses '/', ``*`` and ``?`` do not.

    A ``**`` that is a whole path component matches zero or more components, so
    ``ghcr.io/acme/payments/**`` also covers the repository ``ghcr.io/acme/payments``
    and ``a/**/b`` covers ``a/b``.
    """
    compiled = _GLOB_CACHE.get(pattern)
    if compiled is None:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("/**", i) and (i + 3 == len(pattern) or pattern[i + 3] == "/"):
                out.append("(?:/.*)?")
                i += 3
            elif pattern.startswith("**/", i) and i == 0:
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        compiled = _GLOB_CACHE[pattern] = re.compile("".join(out))
    return compiled


_AGE = re.compile(r"(\d+)\s*([smhdw])")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    match = _AGE.fullmatch(text.strip())
    if not match or len(match.group(1)) > 9:
        raise ValueError(
            f"'{text[:40]}' is not a duration: use a number and s, m, h, d or w, e.g. 90d"
        )
    try:
        return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError as e:
        raise ValueError(f"'{text[:40]}' is longer than any signature can live") from e


# --- loading ------------------------------------------------------------------------------


class _Doc:
    """Typed access to composed YAML nodes with errors at file:line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, message: str) -> PolicyError:
        line = node.start_mark.line + 1 if node is not None else None
        return PolicyError(message, file=self.source, line=line)

    def mapping(self, node: yaml.Node, what: str, allowed: Sequence[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key not in allowed:
                raise self.fail(
                    key_node, f"unknown key '{key}' in {what}; allowed: {', '.join(allowed)}"
                )
            if key in out:
                raise self.fail(key_node, f"duplicate key '{key}' in {what}")
            out[key] = value
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or (
            node.value == "" and node.tag.endswith("null")
        ):
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value)

    def integer(self, node: yaml.Node, what: str, minimum: int = 0) -> int:
        text = self.scalar(node, what)
        if not re.fullmatch(r"-?\d{1,9}", text) or int(text) < minimum:
            raise self.fail(
                node,
                f"{what} must be a whole number from {minimum} to 999999999, not '{text[:20]}'",
            )
        return int(text)

    def choice(self, node: yaml.Node, what: str, enum: type[StrEnum]) -> StrEnum:
        text = self.scalar(node, what)
        try:
            return enum(text)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise self.fail(node, f"{what} is '{text}'; allowed: {allowed}") from None


def load(path: str | Path) -> Policy:
    """Read and validate a policy file; PolicyError names file, line and key."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as e:
        raise PolicyError(f"cannot read the policy: {e.strerror}", file=source) from e
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes", file=source)
    return loads(data, source=source, base=Path(path).parent)


def loads(data: bytes, *, source: str = "<policy>", base: Path | None = None) -> Policy:
    doc = _Doc(source)
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as e:
        raise PolicyError("policy is not UTF-8 text", file=source) from e
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        problem = " ".join(str(e.problem).split())
        raise PolicyError(f"policy is not valid YAML: {problem}", file=source, line=line) from e
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())
        raise PolicyError(f"policy is not valid YAML: {problem}", file=source) from e
    except RecursionError as e:
        raise PolicyError("policy is nested too deeply to be a policy", file=source) from e
    if root is None:
        raise PolicyError("policy is empty", file=source)
    top = doc.mapping(
        root,
        "the policy",
        ("version", "trust", "signers", "registries", "rules", "default", "namespaces"),
    )
    if "version" not in top:
        raise doc.fail(root, "policy has no 'version'; add 'version: 1'")
    if doc.scalar(top["version"], "version") != "1":
        raise doc.fail(top["version"], "policy version must be 1")

    key_files: list[str] = []
    signers = _signers(doc, top.get("signers"), base or Path("."), key_files)
    rules = (
        tuple(_rule(doc, node, signers) for node in doc.sequence(top["rules"], "rules"))
        if "rules" in top
        else ()
    )
    registries = None
    if "registries" in top:
        registries = tuple(
            doc.scalar(n, "a registry") for n in doc.sequence(top["registries"], "registries")
        )
    default: Rule | None = None
    if "default" in top:
        node = top["default"]
        if isinstance(node, yaml.ScalarNode):
            if node.value != "deny":
                raise doc.fail(node, "default must be 'deny' or a rule without 'match'")
        else:
            default = _rule(doc, node, signers, is_default=True)
    if not rules and default is None:
        raise doc.fail(
            root, "policy has no rules, so it would deny every image; add a 'rules' list"
        )
    trust_roots: tuple[str, ...] = ()
    if "trust" in top:
        trust = doc.mapping(top["trust"], "trust", ("roots",))
        if "roots" in trust:
            trust_roots = tuple(
                _relative(doc.scalar(n, "a trust root"), base or Path("."))
                for n in doc.sequence(trust["roots"], "trust.roots")
            )
    digest = digest_of(data)
    covers = parse_scope(doc, top["namespaces"]) if "namespaces" in top else Scope()
    root_files = [r for r in trust_roots if r not in ("public-good", "staging")]
    watched: list[str] = []
    if not trust_roots:  # the default: the embedded root plus every imported one
        from gate.sigstore._store import imported, trust_dir

        root_files = [str(p) for p in imported()]
        watched = [str(trust_dir())]  # its entries change when a root is imported or removed
    pol = Policy(
        signers,
        rules,
        registries,
        default,
        source,
        digest,
        trust_roots=trust_roots,
        scope=covers,
        files=(*key_files, *root_files, *watched),
        version=_version(digest, signers, root_files),
    )
    if any(s.identity is not None for s in signers.values()):
        try:
            pol.roots  # noqa: B018 - load the roots now, so a bad file is an error at load
        except SealgateError as e:
            node = top.get("trust")
            raise doc.fail(node, f"trust roots: {e.message}") from e
    return pol


def _version(digest: str, signers: dict[str, TrustedSigner], root_files: Sequence[str]) -> str:
    h = hashlib.sha256(digest.encode())
    for name, signer in sorted(signers.items()):
        trusted = signer.key.key_id if signer.key is not None else repr(signer.identity)
        h.update(f"\n{name}={trusted}".encode())
    for path in root_files:  # unreadable: loading the roots says so, with file and line
        with contextlib.suppress(OSError):
            h.update(b"\n" + hashlib.sha256(Path(path).read_bytes()).digest())
    return "sha256:" + h.hexdigest()


def stamp(path: str, pol: Policy | None) -> tuple[Any, ...]:
    """Changes whenever the policy file, or a file the policy ``pol`` read, is edited,
    replaced or removed: what the watchdog and the webhook poll to reload it."""
    out: list[Any] = []
    for name in (path, *(pol.files if pol is not None else ())):
        try:
            st = os.stat(name)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError as e:
            out.append(("missing", e.errno))
    return tuple(out)


def _relative(value: str, base: Path) -> str:
    """A trust-root file relative to the policy; the embedded roots go by name."""
    if value in ("public-good", "staging") or Path(value).is_absolute():
        return value
    return str(base / value)


def _signers(
    doc: _Doc, node: yaml.Node | None, base: Path, files: list[str]
) -> dict[str, TrustedSigner]:
    """The signers; ``files`` gets each key file read."""
    if node is None:
        raise PolicyError(
            "policy has no 'signers'; list the public keys you trust", file=doc.source
        )
    signers: dict[str, TrustedSigner] = {}
    for item in doc.sequence(node, "signers"):
        fields = doc.mapping(item, "a signer", ("name", "key", "keyless", "level"))
        if "name" not in fields:
            raise doc.fail(item, "a signer needs 'name'")
        if ("key" in fields) == ("keyless" in fields):
            raise doc.fail(item, "a signer needs exactly one of 'key' and 'keyless'")
        name = doc.scalar(fields["name"], "signer name")
        if name in signers:
            raise doc.fail(fields["name"], f"signer '{name}' is listed twice")
        key: keys.PublicKey | None = None
        identity: Identity | None = None
        if "key" in fields:
            key_text = doc.scalar(fields["key"], f"key of signer '{name}'")
            if (
                not key_text.startswith(("-----BEGIN", "env://"))
                and not Path(key_text).is_absolute()
            ):
                key_text = str(base / key_text)
            if not key_text.startswith(("-----BEGIN", "env://")):
                files.append(key_text)
            try:
                key = keys.load_public_key(key_text)
            except KeyLoadError as e:
                raise doc.fail(fields["key"], f"signer '{name}': {e.message}") from e
        else:
            identity = _identity(doc, fields["keyless"], name)
        level, label = 0, None
        if "level" in fields:
            text = doc.scalar(fields["level"], "level")
            match = re.fullmatch(r"\s*(\d{1,9})\s*(?:-\s*(.+?))?\s*", text)
            if not match:
                raise doc.fail(
                    fields["level"],
                    f"level '{text}' must be a number, optionally with a label: '2 - release'",
                )
            level, label = int(match.group(1)), match.group(2)
        signers[name] = TrustedSigner(name, key, level, label, identity)
    if not signers:
        raise doc.fail(node, "'signers' is empty; list the public keys you trust")
    return signers


_KEYLESS_KEYS = ("issuer", "issuer_regex", "subject", "subject_regex", "claims")


def _identity(doc: _Doc, node: yaml.Node, name: str) -> Identity:
    """A keyless signer: who the Fulcio certificate must name."""
    fields = doc.mapping(node, f"keyless of signer '{name}'", _KEYLESS_KEYS)
    values = {k: doc.scalar(v, k) for k, v in fields.items() if k != "claims"}
    claims: dict[str, str] = {}
    if "claims" in fields:
        claim_nodes = doc.mapping(fields["claims"], "claims", _claim_names())
        claims = {k: doc.scalar(v, f"claim {k}") for k, v in claim_nodes.items()}
    from gate.sigstore import Identity

    try:
        return Identity(claims=claims, **values)
    except UsageError as e:
        raise doc.fail(node, f"signer '{name}': {e.message}") from e


def _claim_names() -> tuple[str, ...]:
    from gate.sigstore._fulcio import CLAIM_NAMES

    return tuple(sorted(CLAIM_NAMES))


_RULE_KEYS = (
    "match",
    "tlog",
    "require",
    "min_level",
    "max_age",
    "pinned",
    "unsupported",
    "attestations",
    "platforms",
    "namespaces",
)


def _tlog(doc: _Doc, node: yaml.Node) -> bool:
    text = doc.scalar(node, "tlog")
    if text not in ("required", "optional"):
        raise doc.fail(node, f"tlog is '{text[:20]}'; allowed: required, optional")
    return text == "required"


def _rule(
    doc: _Doc, node: yaml.Node, signers: dict[str, TrustedSigner], *, is_default: bool = False
) -> Rule:
    fields = doc.mapping(
        node,
        "the default rule" if is_default else "a rule",
        _RULE_KEYS[1:] if is_default else _RULE_KEYS,
    )
    if is_default:
        match = "**"
    elif "match" not in fields:
        raise doc.fail(node, "a rule needs 'match', an image pattern such as 'ghcr.io/acme/**'")
    else:
        match = doc.scalar(fields["match"], "match")
    names: tuple[str, ...] = tuple(signers)
    threshold = 1
    if "require" in fields:
        require = doc.mapping(fields["require"], "require", ("signers", "threshold"))
        if "signers" in require:
            names = tuple(
                doc.scalar(n, "a signer name")
                for n in doc.sequence(require["signers"], "require.signers")
            )
            for name_node, name in zip(require["signers"].value, names, strict=True):
                if name not in signers:
                    raise doc.fail(
                        name_node, f"unknown signer '{name}'; known: {', '.join(signers)}"
                    )
        if "threshold" in require:
            threshold = doc.integer(require["threshold"], "threshold", minimum=1)
            if threshold > len(names):
                raise doc.fail(
                    require["threshold"],
                    f"threshold {threshold} is more than the {len(names)} signers listed",
                )
    max_age = None
    if "max_age" in fields:
        try:
            max_age = parse_age(doc.scalar(fields["max_age"], "max_age"))
        except ValueError as e:
            raise doc.fail(fields["max_age"], str(e)) from e
    checks = []
    if "attestations" in fields:
        for item in doc.sequence(fields["attestations"], "attestations"):
            att = doc.mapping(item, "an attestation", ("type", "builder", "source"))
            if "type" not in att:
                raise doc.fail(
                    item,
                    "an attestation needs 'type' "
                    "(a predicate type URI or alias such as slsaprovenance)",
                )
            kind = doc.scalar(att["type"], "type")
            checks.append(
                AttestationCheck(
                    predicate_type=kind,
                    builder=doc.scalar(att["builder"], "builder") if "builder" in att else None,
                    source=doc.scalar(att["source"], "source") if "source" in att else None,
                )
            )
    return Rule(
        match=match,
        signers=names,
        threshold=threshold,
        min_level=doc.integer(fields["min_level"], "min_level") if "min_level" in fields else None,
        max_age=max_age,
        pinned=Pinned(doc.choice(fields["pinned"], "pinned", Pinned))
        if "pinned" in fields
        else Pinned.REQUIRED,
        unsupported=(
            Unsupported(doc.choice(fields["unsupported"], "unsupported", Unsupported))
            if "unsupported" in fields
            else Unsupported.WARN
        ),
        attestations=tuple(checks),
        platforms=(
            Platforms(doc.choice(fields["platforms"], "platforms", Platforms))
            if "platforms" in fields
            else Platforms.INDEX
        ),
        tlog="tlog" in fields and _tlog(doc, fields["tlog"]),
        line=node.start_mark.line + 1,
        namespaces=(
            parse_namespaces(doc, fields["namespaces"], "the rule's namespaces")
            if "namespaces" in fields
            else None
        ),
    )
