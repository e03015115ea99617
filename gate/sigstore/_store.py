"""Where imported trusted roots live, and which roots a command uses by default.

Roots are files the user controls: ``trust-root import`` copies a checked
root into the trust directory; nothing is ever fetched implicitly, so an
air-gapped gate never reaches for the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from gate.errors import UsageError
from gate.sigstore._trust import EMBEDDED, EMBEDDED_SOURCE, TrustedRoot, Validity


def trust_dir() -> Path:
    """``$SEALGATE_TRUST_DIR``, else ``<XDG_DATA_HOME or ~/.local/share>/sealgate/trust``."""
    explicit = os.environ.get("SEALGATE_TRUST_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sealgate" / "trust"


def imported() -> list[Path]:
    """The root files imported so far, by name."""
    directory = trust_dir()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".json", ".jsonl"))


def import_root(path: str) -> tuple[Path, TrustedRoot]:
    """Check ``path`` is a trusted root (UsageError if not) and copy it into the trust dir."""
    root = TrustedRoot.load(path)
    source = Path(path)
    suffix = source.suffix if source.suffix in (".json", ".jsonl") else ".json"
    target = trust_dir() / (source.stem + suffix)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror or e}") from e
    return target, root


def resolve(names: Sequence[str]) -> TrustedRoot:
    """The roots for ``--trusted-root`` values; none given means the default.

    A value is a file, or ``public-good`` / ``staging`` for an embedded root.
    The default is the embedded public-good root plus every imported root.
    """
    if not names:
        return TrustedRoot.embedded().merged(*(TrustedRoot.load(p) for p in imported()))
    roots = [
        TrustedRoot.embedded(n) if n in EMBEDDED and not Path(n).exists() else TrustedRoot.load(n)
        for n in names
    ]
    return roots[0].merged(*roots[1:])


def describe(files: Sequence[str] = ()) -> str:
    """A human summary of roots: each instance, its authorities and logs, with dates."""
    if files:
        sources = [(f, TrustedRoot.load(f)) for f in files]
    else:
        sources = [(f"embedded ({EMBEDDED_SOURCE})", TrustedRoot.embedded())]
        sources += [(str(p), TrustedRoot.load(p)) for p in imported()]
    lines: list[str] = []
    for where, root in sources:
        for inst in root.instances:
            lines.append(f"{inst.name}: {where}; newest key or CA from {inst.newest:%Y-%m-%d}")
            for label, items in (("CA", inst.cas), ("TSA", inst.tsas)):
                for a in items:
                    lines.append(
                        f"  {label:5} {a.uri or a.chain[0].subject.rfc4514_string()} "
                        f"{_period(a.validity)}"
                    )
            for label, logs in (("tlog", inst.tlogs), ("ctlog", inst.ctlogs)):
                for k in logs:
                    lines.append(f"  {label:5} {k.base_url} {_period(k.validity)}")
    return "\n".join(lines)


def _period(v: Validity) -> str:
    end = f"{v.end:%Y-%m-%d}" if v.end else "now"
    return f"({v.start:%Y-%m-%d} to {end})"
