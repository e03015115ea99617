"""One POST for the HTTP sinks, with ``requests`` errors turned into ``SinkError`` here.

``requests`` puts the full URL in its exception text (``… with url: /services/T0/B0/XXXX``),
and a Slack webhook's path or an InfluxDB ``p=`` parameter is a secret, so the
translated error is raised ``from None`` and says only what the caller names
the sink: the traceback must not carry the URL into a log either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import requests

from gate import __version__
from gate.notify._base import SinkError

USER_AGENT = f"sealgate/{__version__}"
_RETRYABLE_4XX = frozenset({408, 425, 429})


def session() -> requests.Session:
    """A session that sends our User-Agent (proxies from the environment still apply)."""
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def post(
    s: requests.Session,
    url: str,
    body: bytes,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST ``body``; any failure or non-2xx answer raises ``SinkError`` naming ``what``.

    Redirects are not followed: a 3xx would carry signed bodies and tokens to
    another place than the one configured.
    """
    try:
        response = s.post(
            url,
            data=body,
            headers=dict(headers or {}),
            params=dict(params or {}),
            auth=auth,
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise SinkError(f"{what} did not answer within {timeout:g} s") from None
    except requests.ConnectionError as e:
        raise SinkError(f"cannot reach {what}: {_connection_reason(e)}") from None
    except requests.RequestException as e:
        raise SinkError(f"cannot send to {what}: {type(e).__name__}") from None
    if 200 <= response.status_code < 300:
        return response
    code = response.status_code
    raise SinkError(
        f"{what} answered {code} {response.reason or ''}".rstrip() + _detail(response),
        status=code,
        permanent=400 <= code < 500 and code not in _RETRYABLE_4XX,
    )


def _connection_reason(error: BaseException) -> str:
    """``connection refused`` and friends, picked out of the exception text without its URL."""
    text = str(error)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return reason
    return "connection failed"


def _detail(response: requests.Response) -> str:
    """A short reason from the body: InfluxDB's ``{"error": …}``, Slack's ``invalid_token``."""
    text = response.text.strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                text = data[key]
                break
    first = text.splitlines()[0] if text else ""
    return f": {first[:200]}" if first else ""
