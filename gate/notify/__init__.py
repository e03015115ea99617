"""Where results go: alert sinks (Slack, webhook, log), InfluxDB, Prometheus, and the spool.

Sinks are picked by URL scheme from one table (STYLE.md #4), each is a small
``Sink`` whose ``send()`` raises only ``SinkError``, and the watchdog puts a
``Spool`` in front of each so an outage loses nothing::

    sink = sink_for("https://hooks.slack.com/services/T0/B0/XXXX")
    spool = Spool(Path("/var/lib/sealgate/spool"), sink)
    spool.put([event]); spool.flush()

Commit statuses (GitHub, GitLab) live beside these in ``_github``/``_gitlab``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from gate.errors import UsageError
from gate.notify._base import Event, Sink, SinkError, event_id, redact, url_secrets
from gate.notify._influx import InfluxSink, line_protocol
from gate.notify._log import LogSink
from gate.notify._prometheus import Metrics, MetricsServer, parse_addr
from gate.notify._slack import SlackSink
from gate.notify._spool import Spool
from gate.notify._webhook import WebhookSink

__all__ = [
    "SINK_FOR_SCHEME",
    "Event",
    "InfluxSink",
    "LogSink",
    "Metrics",
    "MetricsServer",
    "Sink",
    "SinkError",
    "SlackSink",
    "Spool",
    "WebhookSink",
    "event_id",
    "line_protocol",
    "parse_addr",
    "redact",
    "sink_for",
    "url_secrets",
]

SLACK_HOSTS = frozenset({"hooks.slack.com"})
"""An http(s) URL on these hosts is a Slack incoming webhook, not a generic one."""


def _http(url: str, secret: str | None, timeout: float) -> Sink:
    if (urlsplit(url).hostname or "").lower() in SLACK_HOSTS:
        return SlackSink(url, timeout=timeout)
    return WebhookSink(url, secret, timeout=timeout)


def _slack(url: str, secret: str | None, timeout: float) -> Sink:
    return SlackSink(url.removeprefix("slack+"), timeout=timeout)


def _influx(url: str, secret: str | None, timeout: float) -> Sink:
    return InfluxSink(url, timeout=timeout)


def _log(url: str, secret: str | None, timeout: float) -> Sink:
    where = url.removeprefix("log:")
    if url == "-" or where == "stdout":
        return LogSink(sys.stdout)
    if where in ("", "stderr"):
        return LogSink(sys.stderr)
    return LogSink(path=Path(where))


SINK_FOR_SCHEME: dict[str, Callable[[str, str | None, float], Sink]] = {
    "http": _http,
    "https": _http,
    "slack+http": _slack,
    "slack+https": _slack,
    "influx": _influx,
    "influx2": _influx,
    "log": _log,
}
"""URL scheme to sink factory ``(url, secret, timeout) -> Sink``."""


def sink_for(url: str, *, secret: str | None = None, timeout: float = 10.0) -> Sink:
    """The sink an ``--alert``/``--influx`` URL names.

    ``https://hooks.slack.com/…`` and ``slack+https://…`` are Slack; other
    ``http(s)://`` URLs are generic webhooks (signed with ``secret`` if given);
    ``influx://``/``influx2://`` are InfluxDB; ``log:``, ``log:stdout``,
    ``log:PATH`` and ``-`` are the JSON-lines log. InfluxDB's own endpoint
    URLs (``http://host:8086/write?db=…``) need ``InfluxSink(url)`` directly,
    since as an alert URL they would be a webhook. Raises ``UsageError``.
    """
    scheme = "log" if url == "-" else urlsplit(url).scheme.lower()
    factory = SINK_FOR_SCHEME.get(scheme)
    if factory is None or (scheme != "log" and not urlsplit(url).hostname):
        raise UsageError(
            f"{_shown(url)} is not an alert URL: "
            "use http(s)://, slack+https://, influx://, influx2:// or log:"
        )
    return factory(url, secret, timeout)


def _shown(url: str) -> str:
    """Enough of a URL to recognise it, none of what may be secret (userinfo, path, query)."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        hidden = parts.path not in ("", "/") or parts.query
        return f"{parts.scheme}://{parts.hostname}" + ("/***" if hidden else "")
    head, sep, _ = url.partition("/")
    return head.rsplit("@", 1)[-1] + ("/***" if sep else "")
