"""The webhook's HTTP/1.1 framing (sans I/O): what it accepts, and what it refuses.

Every refusal is a status and one sentence, after which the server closes the
connection; the timeouts and the TLS end of the same behaviour are in
tests/integration/test_admission_http.py, against the running server.
"""

from __future__ import annotations

import pytest

from gate.admission import _http
from gate.admission._http import HTTPError, HTTPRequest, RequestReader, response

LIMIT = 1000


def _reader(*chunks: bytes) -> RequestReader:
    reader = RequestReader(max_body=LIMIT)
    for chunk in chunks:
        reader.feed(chunk)
    return reader


def _refusal(reader: RequestReader) -> HTTPError:
    with pytest.raises(HTTPError) as raised:
        while reader.next() is not None:
            pass
    return raised.value


def test_a_post_with_a_body_and_keep_alive() -> None:
    reader = _reader(
        b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert reader.next() == HTTPRequest(
        "POST", "/validate", {"host": "x", "content-length": "2"}, b"{}", True
    )
    assert reader.next() is None and not reader.started


def test_the_response_is_one_buffer_with_its_length() -> None:
    answer = response(200, b"{}", "application/json", close=False)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n{}")
    assert b"Content-Length: 2\r\n" in answer and b"Connection" not in answer
    assert b"Connection: close\r\n" in response(413, b"x", "text/plain", close=True)


def test_pipelined_requests_come_out_in_order() -> None:
    one = b"POST /validate HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    two = b"GET /healthz HTTP/1.1\r\n\r\n"
    three = b"POST /mutate HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz"
    reader = _reader(one + two + three)
    first, second, third = (reader.next() for _ in range(3))
    assert first is not None and (first.path, first.body) == ("/validate", b"abc")
    assert second is not None and (second.method, second.body) == ("GET", b"")
    assert third is not None and (third.body, third.keep_alive) == (b"z", False)
    assert reader.next() is None


def test_a_request_split_anywhere_is_read_whole() -> None:
    data = b"POST /validate HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + b"x" * 500
    for size in (1, 2, 3, 37, 499):
        reader = RequestReader(max_body=LIMIT)
        got = []
        for i in range(0, len(data), size):
            reader.feed(data[i : i + size])
            assert reader.started
            if (request := reader.next()) is not None:
                got.append(request)
        assert len(got) == 1 and got[0].body == b"x" * 500, size


def test_http_1_0_closes_unless_asked_to_keep_alive() -> None:
    reader = _reader(
        b"GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    )
    first, second = reader.next(), reader.next()
    assert first is not None and not first.keep_alive
    assert second is not None and second.keep_alive


def test_the_end_between_requests_is_fine_and_within_one_is_refused() -> None:
    reader = _reader(b"GET /healthz HTTP/1.1\r\n\r\n")
    assert reader.next() is not None
    reader.eof()  # nothing cut short
    reader = _reader(b"POST /validate HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert reader.next() is None
    with pytest.raises(HTTPError, match="in the middle of a request"):
        reader.eof()


def test_expect_100_continue_is_flagged_until_the_body_is_here() -> None:
    reader = _reader(
        b"POST /validate HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    assert reader.next() is None and reader.continue_needed
    reader.feed(b"{}")
    request = reader.next()
    assert request is not None and request.body == b"{}" and not reader.continue_needed


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
        # A bare LF ends a line for some proxies: the Content-Length they see must not
        # hide inside a value here (the body would be read as the next request).
        (b"POST /v HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n", 400, "control"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n", 400, "control"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\rContent-Length: 5\r\n\r\n", 400, "control"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400, "control"),
        (b"GET /healthz\nHost: HTTP/1.1\r\n\r\n", 400, "request line"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n", 400, "request line"),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 65 + b"\r\n", 431, "more than 64"),
    ],
)
def test_refusals(data: bytes, status: int, words: str) -> None:
    refused = _refusal(_reader(data))
    assert (refused.status, words in refused.message) == (status, True), refused.message


def test_a_head_without_an_end_is_refused_once_it_passes_the_limit() -> None:
    reader = _reader(b"GET / HTTP/1.1\r\nX: " + b"a" * (_http.MAX_HEAD - 100))
    assert reader.next() is None
    reader.feed(b"a" * 200)
    assert _refusal(reader).status == 431


def test_a_timed_out_request_says_how_long_it_had(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "REQUEST_TIMEOUT", 2.5)
    refused = _http.timed_out()
    assert refused.status == 408 and "2.5 s" in refused.message
