"""InfluxDB: every result as a line-protocol point, to v1 ``/write`` or v2 ``/api/v2/write``.

The seed wrote ``vcn_verification,hostname=..,container_name=.. failed=0|1``
with no escaping, so a container name with a space broke the write. We keep
its shape (measurement ``sealgate_verification``; tags host, container_name,
container_id, image, status, level; field ``failed``) and escape exactly as
the spec says.

NOTE: line protocol per influxdata/docs-v2 ``reference/syntax/line-protocol.md``
(FORMATS.md §10); endpoints per docs.influxdata.com/influxdb/v1/api/write and
the v2 ``/api/v2/write`` API.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from gate.errors import UsageError
from gate.notify import _http
from gate.notify._base import REDACTED, Event, Sink, as_utc

MEASUREMENT = "sealgate_verification"
TOKEN_ENV = "SEALGATE_INFLUX_TOKEN"
DEFAULT_PORT = 8086
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_STRING = 64 * 1024 - 1

# NOTE: "Nothing else is escaped" (FORMATS.md §10): backslash is literal in names and tags.
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


def _one_line(text: str) -> str:
    """Newlines end a point, so inside a value they become spaces."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _unescapable_tail(text: str) -> str:
    # A trailing backslash would escape the separator after it (InfluxDB 1.x
    # rejects "a=x\\ f=1i" whatever we do), so it cannot be written: drop it.
    return text.rstrip("\\")


def escape_measurement(name: str) -> str:
    """Commas and spaces are escaped in a measurement name."""
    return _unescapable_tail(_one_line(name)).translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Commas, equals signs and spaces are escaped in tag keys, tag values and field keys."""
    return _unescapable_tail(_one_line(text)).translate(_KEY_ESCAPES)


def quote_string(text: str) -> str:
    """A string field value: double quotes and backslashes escaped, wrapped in quotes."""
    return '"' + _one_line(text)[:_MAX_STRING].translate(_STRING_ESCAPES) + '"'


def tags(event: Event) -> dict[str, str]:
    """The point's tags; empty ones are left out (InfluxDB has no empty tag values)."""
    values = {
        "host": event.host,
        "container_name": event.container_name or "",
        "container_id": event.container_id or "",
        "image": event.image,
        "status": event.status.value,
        "level": "" if event.level is None else str(event.level),
    }
    return {k: v for k, v in values.items() if escape_key(v)}


def fields(event: Event) -> dict[str, int | float | str]:
    """``failed`` (0/1 integer) always; ``latency_ms`` if known; digest, reason, action as text."""
    values: dict[str, int | float | str] = {"failed": int(event.failed)}
    if event.latency_ms is not None and math.isfinite(event.latency_ms):
        values["latency_ms"] = float(event.latency_ms)
    for key, text in (("digest", event.digest), ("reason", event.reason), ("action", event.action)):
        if text:
            values[key] = text
    return values


def timestamp_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (as_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def line_protocol(event: Event) -> str:
    """One point for ``event``, millisecond precision, tags sorted by key (InfluxDB's advice)."""
    head = escape_measurement(MEASUREMENT) + "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags(event).items())
    )
    body = ",".join(f"{escape_key(k)}={_field_value(v)}" for k, v in fields(event).items())
    return f"{head} {body} {timestamp_ms(event.time)}"


def _field_value(value: int | float | str) -> str:
    if isinstance(value, bool):  # a bool is an int; it would otherwise become 1i
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return quote_string(value)


class InfluxSink(Sink):
    """Writes points to InfluxDB.

    Accepted URLs:
    ``influx://[user[:password]@]host[:port]/db[?rp=RP]`` (v1, Basic auth when given; a
    missing password is ``password``, from ``SEALGATE_INFLUX_PASSWORD`` in the watchdog),
    ``influx2://host[:port]?org=ORG&bucket=BUCKET`` (v2, token from ``SEALGATE_INFLUX_TOKEN``),
    and the endpoints themselves, ``http(s)://host:port/write?db=…`` and
    ``http(s)://host:port/api/v2/write?org=…&bucket=…``. Precision is always ms.
    Raises ``UsageError`` for anything else, or a v2 URL without a token.
    """

    batch_size = 5000
    kind = "influx"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._timeout = timeout
        self._session = _http.session()
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        self._auth: tuple[str, str] | None = None
        self._password = password
        """For ``user@`` URLs without one (kept out of the URL, and so out of ``ps``)."""
        endpoint, params, secrets = self._parse(url, token)
        self._endpoint, self._params = endpoint, params
        parts = urlsplit(endpoint)
        where = f"{parts.scheme}://{parts.netloc}"
        label = (
            f"db {params['db']}"
            if "db" in params
            else f"org {params.get('org')}, bucket {params.get('bucket')}"
        )
        super().__init__(f"InfluxDB {where} ({label})", url, secrets=secrets)

    def _parse(self, url: str, token: str | None) -> tuple[str, dict[str, str], list[str]]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        secrets = [
            url
        ]  # the database and org names are not secrets; password/token are added below
        host = parts.hostname or ""
        if not host:
            raise _not_influx(url)
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port or DEFAULT_PORT}"
        if parts.scheme == "influx":
            db = unquote(parts.path.strip("/"))
            if not db or "/" in db:
                raise UsageError(f"{_shown(url)} names no database: use influx://host:port/DB")
            if parts.username:
                password = unquote(parts.password or "") or self._password or ""
                self._auth = (unquote(parts.username), password)
                secrets.append(password)
            params = {"db": db, **{k: v for k, v in query.items() if k == "rp"}}
            return f"http://{netloc}/write", {**params, "precision": "ms"}, secrets
        if parts.scheme == "influx2":
            bucket = query.get("bucket") or unquote(parts.path.strip("/"))
            org = query.get("org", "")
            if not org or not bucket:
                raise UsageError(f"{_shown(url)} needs ?org=ORG&bucket=BUCKET")
            self._use_token(url, token, secrets)
            params = {"org": org, "bucket": bucket, "precision": "ms"}
            return f"http://{netloc}/api/v2/write", params, secrets
        if parts.scheme in ("http", "https"):
            endpoint = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
            if parts.path.rstrip("/").endswith("/api/v2/write"):
                if not query.get("org") or not query.get("bucket"):
                    raise UsageError(f"{_shown(url)} needs ?org=ORG&bucket=BUCKET")
                self._use_token(url, token, secrets)
                return endpoint, {**query, "precision": "ms"}, secrets
            if parts.path.rstrip("/").endswith("/write") and query.get("db"):
                secrets.append(query.get("p", ""))
                if parts.username:
                    password = unquote(parts.password or "") or self._password or ""
                    self._auth = (unquote(parts.username), password)
                    secrets.append(password)
                return endpoint, {**query, "precision": "ms"}, secrets
        raise _not_influx(url)

    def _use_token(self, url: str, token: str | None, secrets: list[str]) -> None:
        token = token or os.environ.get(TOKEN_ENV, "")
        if not token:
            raise UsageError(
                f"{_shown(url)} is an InfluxDB 2 URL but no token is set",
                hint=f"put the API token in {TOKEN_ENV}",
            )
        self._headers["Authorization"] = f"Token {token}"
        secrets.append(token)

    @property
    def write_url(self) -> str:
        """The endpoint with its query (``p=`` redacted), for logs and tests."""
        shown = {k: (REDACTED if k == "p" else v) for k, v in self._params.items()}
        return f"{self._endpoint}?{urlencode(shown)}"

    def _send(self, events: Sequence[Event]) -> None:
        payload = "".join(line_protocol(e) + "\n" for e in events).encode()
        _http.post(
            self._session,
            self._endpoint,
            payload,
            what=self.name,
            headers=self._headers,
            params=self._params,
            auth=self._auth,
            timeout=self._timeout,
        )


def _shown(url: str) -> str:
    """The URL without userinfo or query (both can hold secrets)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}{parts.path}"


def _not_influx(url: str) -> UsageError:
    return UsageError(
        f"{_shown(url)} is not an InfluxDB URL",
        hint="use influx://host:port/DB, influx2://host:port?org=ORG&bucket=BUCKET, "
        "or http(s)://host:port/write?db=DB",
    )
