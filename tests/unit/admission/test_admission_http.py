"""The webhook's HTTP/1.1 framing over a real socket pair: what it accepts, and what it refuses.

Every refusal is a status, one sentence, and a closed connection; nothing
here needs TLS (the wrapped socket behaves the same), so these run in
milliseconds. The TLS end of the same behaviour is in the integration tests.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gate.admission import _http
from gate.admission._http import Connection, HTTPError, HTTPRequest

LIMIT = 1000


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    server, client = socket.socketpair()
    try:
        yield Connection(server, max_body=LIMIT), client
    finally:
        server.close()
        client.close()


def _refusal(connection: Connection) -> HTTPError:
    with pytest.raises(HTTPError) as raised:
        connection.next_request()
    return raised.value


def test_a_post_with_a_body_then_keep_alive(pair: tuple[Connection, socket.socket]) -> None:
    connection, client = pair
    client.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    request = connection.next_request()
    assert request == HTTPRequest(
        "POST", "/validate", {"host": "x", "content-length": "2"}, b"{}", True
    )
    connection.send(200, b"{}", "application/json", close=False)
    answer = client.recv(1000)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n{}")
    assert b"Content-Length: 2\r\n" in answer and b"Connection" not in answer


def test_pipelined_requests_come_out_in_order(pair: tuple[Connection, socket.socket]) -> None:
    connection, client = pair
    one = b"POST /validate HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    two = b"GET /healthz HTTP/1.1\r\n\r\n"
    three = b"POST /mutate HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz"
    client.sendall(one + two + three)
    first, second, third = (connection.next_request() for _ in range(3))
    assert first is not None and (first.path, first.body) == ("/validate", b"abc")
    assert second is not None and (second.method, second.body) == ("GET", b"")
    assert third is not None and (third.body, third.keep_alive) == (b"z", False)


def test_a_body_split_across_many_writes_is_read_whole(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, client = pair
    data = b"POST /validate HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + b"x" * 500

    def drip() -> None:
        for i in range(0, len(data), 37):
            client.sendall(data[i : i + 37])
            time.sleep(0.001)

    writer = threading.Thread(target=drip)
    writer.start()
    request = connection.next_request()
    writer.join()
    assert request is not None and request.body == b"x" * 500


def test_http_1_0_closes_unless_asked_to_keep_alive(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, client = pair
    client.sendall(
        b"GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    )
    first, second = connection.next_request(), connection.next_request()
    assert first is not None and not first.keep_alive
    assert second is not None and second.keep_alive


def test_a_clean_close_between_requests_is_not_an_error(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, client = pair
    client.shutdown(socket.SHUT_WR)
    assert connection.next_request() is None


def test_expect_100_continue_is_answered_before_the_body(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, client = pair
    client.sendall(b"POST /validate HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    got: list[HTTPRequest | None] = []
    reader = threading.Thread(target=lambda: got.append(connection.next_request()))
    reader.start()
    assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.sendall(b"{}")
    reader.join(5)
    assert got and got[0] is not None and got[0].body == b"{}"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"POST /validate HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "larger than 1000"),
        (b"POST /validate HTTP/1.1\r\n\r\n", 411, "needs a Content-Length"),
        (b"POST /v HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "not a number"),
        (b"POST /v HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "not a number"),
        (b"POST /v HTTP/1.1\r\nContent-Length: \xd9\xa3\r\n\r\n", 400, "not a number"),
        (b"POST /v HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400, "repeated"),
        (b"POST /v HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "Transfer-Encoding"),
        (
            b"POST /v HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
            "Content-Length",
        ),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP/1.1"),
        (b"GET /healthz\r\n\r\n", 400, "request line"),
        (b"GET http://x/healthz HTTP/1.1\r\n\r\n", 400, "request line"),
        (b"G\xc3T /healthz HTTP/1.1\r\n\r\n", 400, "request line"),
        (b"GET /h\xc3 HTTP/1.1\r\n\r\n", 400, "not ASCII"),
        (b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400, "malformed"),
        (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed"),
        (b"GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "malformed"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n", 400, "request line"),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 65 + b"\r\n", 431, "more than 64"),
    ],
)
def test_refusals(
    pair: tuple[Connection, socket.socket], data: bytes, status: int, words: str
) -> None:
    connection, client = pair
    client.sendall(data)
    refused = _refusal(connection)
    assert (refused.status, words in refused.message) == (status, True), refused.message


def test_a_head_without_an_end_is_refused_once_it_passes_the_limit(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, client = pair
    client.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * (_http.MAX_HEAD + 10))
    assert _refusal(connection).status == 431


def test_a_request_cut_short_is_refused(pair: tuple[Connection, socket.socket]) -> None:
    connection, client = pair
    client.sendall(b"POST /validate HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    client.shutdown(socket.SHUT_WR)
    assert "before the whole body" in _refusal(connection).message


def test_a_slow_client_gets_408_however_it_drips(
    pair: tuple[Connection, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte arrives well within any per-read timeout; the whole request does not."""
    monkeypatch.setattr(_http, "REQUEST_TIMEOUT", 0.3)
    connection, client = pair
    stop = threading.Event()

    def drip() -> None:
        for byte in b"POST /validate HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789":
            if stop.wait(0.05):
                return
            client.sendall(bytes([byte]))

    writer = threading.Thread(target=drip)
    writer.start()
    try:
        started = time.monotonic()
        assert _refusal(connection).status == 408
        assert time.monotonic() - started < 2.0  # bounded by the deadline, not by the drip
    finally:
        stop.set()
        writer.join()


def test_an_idle_kept_alive_connection_is_closed_quietly(
    pair: tuple[Connection, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "IDLE_TIMEOUT", 0.2)
    connection, _ = pair
    assert connection.next_request() is None
