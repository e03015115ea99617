"""A generic webhook: a JSON body, signed with HMAC-SHA256 when a secret is set.

The receiver checks ``X-Sealgate-Signature: sha256=<hex>`` over the exact
bytes it received (the scheme GitHub uses for its own webhooks, so existing
verifiers fit), and dedupes by ``X-Sealgate-Event-Id``. One event per request,
so that header names the one event in ``{"events": [...]}``; the list leaves
room for batching without changing the body's shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from urllib.parse import urlsplit

from gate.notify import _http
from gate.notify._base import REDACTED, Event, Sink, url_secrets

SIGNATURE_HEADER = "X-Sealgate-Signature"
EVENT_ID_HEADER = "X-Sealgate-Event-Id"


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body keyed by secret>``, the header's value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body(events: Sequence[Event]) -> bytes:
    """The exact bytes posted (and signed)."""
    return json.dumps(
        {"events": [event.to_dict() for event in events]}, separators=(",", ":")
    ).encode()


class WebhookSink(Sink):
    """POSTs each event as JSON to ``url``; the path and query are treated as secrets."""

    batch_size = 1
    kind = "webhook"

    def __init__(self, url: str, secret: str | None = None, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        hidden = parts.path not in ("", "/") or bool(parts.query)
        super().__init__(
            f"webhook {shown}" + (f"/{REDACTED}" if hidden else ""),
            url,
            secrets=(*url_secrets(url), secret or ""),
        )
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._session = _http.session()

    def _send(self, events: Sequence[Event]) -> None:
        payload = body(events)
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: events[0].id}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, payload)
        _http.post(
            self._session,
            self._url,
            payload,
            what=self.name,
            headers=headers,
            timeout=self._timeout,
        )
