"""Slack incoming webhooks: the seed's ``err()`` message, with everything a person needs.

vcn-watchdog posted "container X is not verified" every minute. Ours posts
once per change of state and says which container (name and short ID), which
image and digest, the status and why, on which host, and what was done about
it; a recovery gets its own message.

NOTE: the payload is Slack's incoming-webhook format (``text`` as the
notification fallback plus Block Kit ``blocks``); mrkdwn needs ``&``, ``<``
and ``>`` escaped (api.slack.com/reference/surfaces/formatting#escaping).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from gate.notify import _http
from gate.notify._base import REDACTED, Event, Sink, url_secrets
from gate.result import Status

_ICON = {
    Status.TRUSTED: ":white_check_mark:",
    Status.UNTRUSTED: ":rotating_light:",
    Status.UNKNOWN: ":warning:",
    Status.UNSUPPORTED: ":hourglass:",
    Status.ERROR: ":x:",
}
_HEADER_MAX = 150
_FIELD_MAX = 2000
_SECTION_MAX = 3000


class SlackSink(Sink):
    """Posts one message per event to a Slack incoming-webhook URL (its path is the secret)."""

    batch_size = 1
    kind = "slack"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        super().__init__(
            f"Slack webhook {parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/{REDACTED}",
            url,
            secrets=url_secrets(url),
        )
        self._url = url
        self._timeout = timeout
        self._session = _http.session()

    def _send(self, events: Sequence[Event]) -> None:
        for event in events:
            body = json.dumps(message(event)).encode()
            _http.post(
                self._session,
                self._url,
                body,
                what=self.name,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            )


def message(event: Event) -> dict[str, Any]:
    """The Slack payload for one event: ``text`` for notifications, ``blocks`` for the channel."""
    return {"text": summary(event), "blocks": _blocks(event)}


def summary(event: Event) -> str:
    """One line: what happened to what, where, and why."""
    what = _subject(event)
    if event.recovered:
        line = f"{what} on {event.host} is TRUSTED again (was {_status(event.previous_status)})"
    else:
        line = f"{event.status.value}: {what} on {event.host}"
        if event.reason:
            line += f": {event.reason}"
    if event.action:
        line += f"; action taken: {event.action}"
    return f"{_ICON[event.status]} {escape(line)}"


def _subject(event: Event) -> str:
    if event.container_id is None and event.container_name is None:
        return f"image {event.image}"
    name = event.container_name or event.short_id
    return f"container {name} ({event.short_id})" if event.short_id else f"container {name}"


def _status(status: Status | None) -> str:
    return status.value if status else "unknown"


def _blocks(event: Event) -> list[dict[str, Any]]:
    title = (
        "Recovered" if event.recovered else event.status.value
    ) + f": {_subject(event)} on {event.host}"
    status = event.status.value
    if event.previous_status is not None and event.previous_status is not event.status:
        status += f" (was {event.previous_status.value})"
    fields = []
    if event.container_id is not None or event.container_name is not None:
        fields.append(("Container", f"{event.container_name or '-'} (`{event.short_id or '-'}`)"))
    fields += [
        ("Image", f"`{event.image}`"),
        ("Digest", f"`{event.digest}`" if event.digest else "none known"),
        ("Status", status),
        ("Host", event.host),
    ]
    if event.level is not None:
        fields.append(("Level", str(event.level)))
    if event.action:
        fields.append(("Action taken", event.action))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:_HEADER_MAX]}},
    ]
    if event.reason:
        blocks.append(_mrkdwn_section(escape(event.reason)))
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"[:_FIELD_MAX]}
                for label, value in fields
            ],
        }
    )
    when = event.time.isoformat(timespec="seconds")
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"sealgate · {when} · event {event.id[:12]}"}],
        }
    )
    return blocks


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_MAX]}}


def escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
