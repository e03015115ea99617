"""Sink URLs and secrets from where other local users cannot read them.

A Slack webhook's path, a webhook's query token or an InfluxDB password given
as ``--alert URL`` is in ``/proc/PID/cmdline`` and ``ps`` for every user on the
host, and in a compose file's ``command:``. So each can also come from:

* a file (``--alert-file``, ``--influx-file``): one URL per line, ``#`` comments;
  Docker and compose secrets are files under ``/run/secrets/``;
* an environment variable (``SEALGATE_ALERT_URLS``, ``SEALGATE_INFLUX_URLS``:
  URLs separated by whitespace), or a file it names (``…_FILE``).

Single secrets (``SEALGATE_WEBHOOK_SECRET``, ``SEALGATE_INFLUX_TOKEN``) take a
``…_FILE`` variant the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gate.errors import UsageError


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path} is not UTF-8 text") from e


def _urls(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if not line.strip().startswith("#"):
            found.extend(line.split())
    return found


def secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$NAME``, else the contents of the file ``$NAME_FILE`` names (trailing newline dropped)."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if path:
        return _read(path, f"the file in {name}_FILE").strip() or None
    return None


def urls(
    given: Sequence[str],
    files: Sequence[str],
    variable: str,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Every URL from the command line, the files, ``$VARIABLE`` and ``$VARIABLE_FILE``, in order,
    without duplicates."""
    env = os.environ if environ is None else environ
    found = list(given)
    for path in files:
        found.extend(_urls(_read(path, "the URL file")))
    found.extend(_urls(env.get(variable, "")))
    if env.get(f"{variable}_FILE"):
        found.extend(_urls(_read(env[f"{variable}_FILE"], f"the file in {variable}_FILE")))
    return list(dict.fromkeys(found))
