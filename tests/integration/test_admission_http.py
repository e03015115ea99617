"""The webhook's HTTPS face against hostile and odd clients, over real TLS on 127.0.0.1.

The API server is the only client the webhook expects; anything else that
reaches the port gets a status and a sentence, or a closed connection, and
never stops the webhook from answering the next request. Requests here are
for ``kube-system`` (skipped by the default scope), so no registry is needed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate import keys
from gate.admission import _http, _server
from tests.admission_wire import CA, Webhook, pod, review, serve

pytestmark = pytest.mark.integration


def _policy(tmp_path: Path) -> Path:
    (tmp_path / "ci.pub").write_bytes(keys.generate().public_key.pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners: [{name: ci, key: ci.pub}]\n"
        "rules: [{match: '**', require: {signers: [ci]}}]\n"
    )
    return policy


@pytest.fixture
def hook(tmp_path: Path, isolated_docker_config: Path) -> Iterator[Webhook]:
    ca = CA.create(tmp_path)
    policy = _policy(tmp_path)
    with serve(policy, ca, tmp_path / "hook") as webhook:
        webhook.ca = ca  # type: ignore[attr-defined]
        yield webhook


def _tls(hook: Webhook, *, receive_buffer: int = 0) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(hook.ca.bundle))  # type: ignore[attr-defined]
    raw = socket.socket()
    raw.settimeout(10)
    if receive_buffer:  # fixed, so the kernel cannot hold everything the webhook writes
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect(("127.0.0.1", hook.server.port))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _post(body: bytes, path: str = "/validate", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def _responses(sock: ssl.SSLSocket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` responses (status, headers, body) off ``sock``."""
    data, out = b"", []
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(headers["content-length"])
            if len(data) >= end + 4 + length:
                out.append((int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(out)} of {count} responses"
        data += chunk
    return out


def _closed(sock: ssl.SSLSocket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def _skipped_review(name: str) -> dict[str, object]:
    return review(pod(name, "127.0.0.1:1/never/pulled:1"), namespace="kube-system")


def test_keep_alive_and_pipelining_answer_each_request_with_its_own_uid(hook: Webhook) -> None:
    reviews = [_skipped_review(f"p{i}") for i in range(5)]
    with _tls(hook) as sock:
        sock.sendall(b"".join(_post(json.dumps(r).encode()) for r in reviews))  # one write
        answers = _responses(sock, 5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")  # and the connection is still open
        assert _responses(sock, 1)[0][2] == b"ok\n"
    for sent, (status, headers, body) in zip(reviews, answers, strict=True):
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body)["response"]["uid"] == sent["request"]["uid"]  # type: ignore[index]


def test_an_oversized_body_is_413_unread_and_the_webhook_goes_on(hook: Webhook) -> None:
    with _tls(hook) as sock:
        sock.sendall(b"POST /validate HTTP/1.1\r\nContent-Length: 3145729\r\n\r\n{")
        ((status, headers, body),) = _responses(sock, 1)
        assert status == 413 and headers["connection"] == "close" and b"3145728" in body
        assert _closed(sock)
    assert hook.session.get(f"{hook.url}/healthz", timeout=5).text == "ok\n"


def test_malformed_requests_get_a_sentence_and_a_closed_connection(hook: Webhook) -> None:
    cases = {
        b"POST /validate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 501,
        b"POST /validate HTTP/1.1\r\n\r\n": 411,
        b"BREW /validate HTTP/1.1\r\n\r\n": 405,
        b"GET /nothing HTTP/1.1\r\n\r\n": 404,
        b"GET /healthz HTTP/3\r\n\r\n": 505,
        b"\x00\x01garbage\r\n\r\n": 400,
    }
    for data, expected in cases.items():
        with _tls(hook) as sock:
            sock.sendall(data)
            ((status, _, body),) = _responses(sock, 1)
            assert status == expected, (data, body)
            assert body.endswith(b"\n") and len(body.splitlines()) == 1
            if status not in (404, 405):  # answered routing errors keep the connection
                assert _closed(sock)


def test_a_slow_client_is_cut_off_by_the_request_deadline(
    hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "REQUEST_TIMEOUT", 0.5)
    with _tls(hook) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /validate HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        for _ in range(8):  # a byte every 0.1 s: alive, but never done in time
            time.sleep(0.1)
            try:
                sock.sendall(b" ")
            except (ConnectionError, ssl.SSLError):
                break
        ((status, _, body),) = _responses(sock, 1)
        assert status == 408 and b"0.5 s" in body
        assert time.monotonic() - started < 5
    assert hook.session.get(f"{hook.url}/healthz", timeout=5).ok


def test_plain_http_and_garbage_on_the_tls_port_end_the_connection_only(hook: Webhook) -> None:
    for data in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"A" * 64):
        with socket.create_connection(("127.0.0.1", hook.server.port), timeout=10) as raw:
            raw.sendall(data)
            got = b""
            with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread
                while chunk := raw.recv(4096):
                    got += chunk
            assert b"HTTP/1.1" not in got  # no HTTP answer in the clear
    assert hook.session.get(f"{hook.url}/healthz", timeout=5).ok


def test_connections_beyond_the_limit_are_refused_and_slots_come_back(
    tmp_path: Path, isolated_docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_server, "MAX_CONNECTIONS", 2)
    ca = CA.create(tmp_path)
    policy = _policy(tmp_path)
    with serve(policy, ca, tmp_path / "hook") as hook:
        hook.ca = ca  # type: ignore[attr-defined]
        first, second = _tls(hook), _tls(hook)
        try:
            for sock in (first, second):
                sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                assert _responses(sock, 1)[0][0] == 200
            try:  # the third is closed at once, without an answer
                with _tls(hook) as third:
                    third.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                    assert _closed(third)
            except (ConnectionError, ssl.SSLError):
                pass
        finally:
            first.close()
        deadline = time.monotonic() + 10
        while True:  # the first connection's thread ends and gives its slot back
            try:
                with _tls(hook) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                    assert _responses(sock, 1)[0][0] == 200
                    break
            except (ConnectionError, ssl.SSLError, AssertionError, KeyError):
                assert time.monotonic() < deadline, "the slot never came back"
                time.sleep(0.05)
        second.close()


def test_many_clients_at_once_each_get_their_own_answer(hook: Webhook) -> None:
    """16 connections, 20 requests each, interleaved: no answer crosses to another request."""
    errors: list[str] = []

    def client(n: int) -> None:
        with _tls(hook) as sock:
            for i in range(20):
                sent = _skipped_review(f"c{n}-{i}")
                sock.sendall(_post(json.dumps(sent).encode()))
                ((_, _, body),) = _responses(sock, 1)
                if json.loads(body)["response"]["uid"] != sent["request"]["uid"]:  # type: ignore[index]
                    errors.append(f"{n}/{i}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_a_request_that_waits_for_a_verification_keeps_pipelined_answers_in_order(
    hook: Webhook,
) -> None:
    """The first needs a worker (its registry refuses: ERROR, never cached); the second does not."""
    slow = review(pod("slow", "127.0.0.1:1/gone/app@sha256:" + "c" * 64))
    fast = _skipped_review("fast")
    with _tls(hook) as sock:
        sock.sendall(_post(json.dumps(slow).encode()) + _post(json.dumps(fast).encode()))
        (_, _, first), (_, _, second) = _responses(sock, 2)
    assert json.loads(first)["response"]["uid"] == slow["request"]["uid"]
    assert json.loads(first)["response"]["allowed"] is False
    assert "is ERROR" in json.loads(first)["response"]["status"]["message"]
    assert json.loads(second)["response"]["uid"] == fast["request"]["uid"]


def test_a_client_that_pipelines_without_reading_is_paused_not_buffered(
    hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Megabytes of /metrics asked for before reading any: the webhook stops reading while
    the client's unread answers pile up, then answers every one in order once it reads."""
    paused: list[bool] = []
    pause = _server._Protocol.pause_writing
    monkeypatch.setattr(
        _server._Protocol, "pause_writing", lambda self: (paused.append(True), pause(self))[1]
    )
    count = 6000
    with _tls(hook, receive_buffer=8192) as sock:
        sender = threading.Thread(
            target=sock.sendall, args=(b"GET /metrics HTTP/1.1\r\n\r\n" * count,)
        )
        sender.start()
        time.sleep(1.0)  # let the webhook fill its write buffer and pause
        answers = _responses(sock, count)
        sender.join(30)
    assert paused, "the webhook never had to stop reading"
    assert len(answers) == count and all(b"sealgate_admission_seconds" in a[2] for a in answers)
    assert sum(len(a[2]) for a in answers) > 6_000_000  # more than the sockets' buffers hold


def test_a_tls_pair_gone_before_start_is_a_usage_error(tmp_path: Path) -> None:
    from gate.admission import AdmissionServer, TLSFiles
    from gate.errors import UsageError

    ca = CA.create(tmp_path)
    ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")
    tls = TLSFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    server = AdmissionServer(None, tls, "127.0.0.1:0", None)  # type: ignore[arg-type]
    (tmp_path / "tls.key").unlink()
    with pytest.raises(UsageError, match="cannot use the TLS certificate"):
        server.start()
    server.close()


def test_with_client_ca_only_the_api_servers_certificate_may_ask_for_admissions(
    tmp_path: Path, isolated_docker_config: Path
) -> None:
    """--client-ca: admissions need a certificate that CA signed; probes need none; a
    certificate from another CA does not get past the handshake."""
    import requests

    cas = {}
    for name in ("ca", "api", "stranger"):
        (tmp_path / name).mkdir()
        cas[name] = CA.create(tmp_path / name)
    ca, api_ca, stranger = cas["ca"], cas["api"], cas["stranger"]
    for who, issuer in (("api", api_ca), ("stranger", stranger)):
        issuer.issue(tmp_path / f"{who}.crt", tmp_path / f"{who}.key", common_name="apiserver")
    body = json.dumps(_skipped_review("probe")).encode()
    with serve(_policy(tmp_path), ca, tmp_path / "hook", client_ca=api_ca.bundle) as hook:
        url = f"{hook.url}/validate"
        anonymous = hook.session.post(url, data=body, timeout=10)
        assert anonymous.status_code == 403 and "client certificate" in anonymous.text
        assert "probe" not in anonymous.text  # nothing of the request is echoed
        assert hook.session.get(f"{hook.url}/healthz", timeout=10).text == "ok\n"
        hook.session.cert = (str(tmp_path / "api.crt"), str(tmp_path / "api.key"))
        answer = hook.session.post(url, data=body, timeout=10)
        assert answer.status_code == 200 and answer.json()["response"]["allowed"] is True
        hook.session.cert = (str(tmp_path / "stranger.crt"), str(tmp_path / "stranger.key"))
        hook.session.close()  # a new connection, so a new handshake
        # Refused in the handshake (TLS 1.3 clients learn it as a closed connection).
        with pytest.raises(requests.exceptions.ConnectionError):
            hook.session.post(url, data=body, timeout=10)
        hook.session.cert = None
        assert hook.session.get(f"{hook.url}/readyz", timeout=10).ok  # still serving


def test_a_client_ca_that_is_not_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    from gate.errors import UsageError

    ca = CA.create(tmp_path)
    ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    for client_ca in (tmp_path / "bad.pem", tmp_path / "missing.pem"):
        with pytest.raises(UsageError, match="as the client CA"):
            _server.TLSFiles(
                str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), client_ca=str(client_ca)
            )


def test_with_client_ca_strangers_cannot_take_the_api_servers_connections(
    tmp_path: Path, isolated_docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections without the client certificate fill only their own small pool, and a
    full pool makes room by closing its oldest: idle connections held by any pod must not
    keep the kubelet's probes out (a failed liveness probe restarts the webhook)."""
    monkeypatch.setattr(_server, "MAX_UNAUTHENTICATED", 2)
    monkeypatch.setattr(_server, "MAX_CONNECTIONS", 2)
    (tmp_path / "ca").mkdir()
    (tmp_path / "api").mkdir()
    ca, api_ca = CA.create(tmp_path / "ca"), CA.create(tmp_path / "api")
    api_ca.issue(tmp_path / "api.crt", tmp_path / "api.key", common_name="apiserver")
    body = json.dumps(_skipped_review("held")).encode()
    with serve(_policy(tmp_path), ca, tmp_path / "hook", client_ca=api_ca.bundle) as hook:
        hook.ca = ca  # type: ignore[attr-defined]
        held = [_tls(hook), _tls(hook)]  # an attacker's idle connections, no certificate
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                assert _responses(sock, 1)[0][0] == 200
            # A third stranger (the kubelet's next probe) gets in; the oldest one goes.
            with _tls(hook) as third:
                third.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                assert _responses(third, 1)[0][0] == 200
            assert _closed(held[0])
            held[1].sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert _responses(held[1], 1)[0][0] == 200
            for _ in range(2):  # while the API server still gets in, twice at once
                context = ssl.create_default_context(cafile=str(ca.bundle))
                context.load_cert_chain(str(tmp_path / "api.crt"), str(tmp_path / "api.key"))
                raw = socket.create_connection(("127.0.0.1", hook.server.port), timeout=10)
                held.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
            for sock in held[2:]:
                sock.sendall(_post(body))
                ((status, _, answer),) = _responses(sock, 1)
                assert status == 200 and json.loads(answer)["response"]["allowed"] is True
        finally:
            for sock in held:
                sock.close()


def test_refusals_are_logged_a_line_per_interval_not_a_line_each(
    tmp_path: Path, isolated_docker_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who reaches the port can be refused as fast as it can connect; the log says
    so once, then how many more there were, instead of filling the node's disk."""
    caplog.set_level(logging.INFO, logger="gate.admission")
    ca = CA.create(tmp_path)
    with serve(_policy(tmp_path), ca, tmp_path / "hook") as hook:
        hook.ca = ca  # type: ignore[attr-defined]
        for _ in range(20):
            with _tls(hook) as sock:
                sock.sendall(b"BREW /pot HTTP/1.1 extra\r\n\r\n")
                assert _responses(sock, 1)[0][0] == 400
    refusals = [r for r in caplog.records if "refused a request" in r.getMessage()]
    assert 1 <= len(refusals) <= 3, [r.getMessage() for r in refusals]


def test_a_registrys_error_text_reaches_the_denial_without_control_characters(
    hook: Webhook,
) -> None:
    """kubectl prints the denial to a person's terminal: a hostile registry's error message
    must not recolour it, move the cursor, or start lines that look like other verdicts."""
    from tests.servers.hostile_registry import Answer, HostileRegistry

    trick = "\x1b[32mallowed\x1b[0m\r\n- image web is TRUSTED\x07\u202e"
    body = json.dumps({"errors": [{"code": "DENIED", "message": trick}]}).encode()
    registry = HostileRegistry(lambda _: Answer(404, body, {"Content-Type": "application/json"}))
    try:
        image = f"{registry.host}/x/web@sha256:{'c' * 64}"
        answer = hook.post("validate", review(pod("web", image)))
    finally:
        registry.stop()
    message = answer["status"]["message"]
    assert answer["allowed"] is False and "DENIED" in message and registry.host in message
    assert not any(c in message for c in "\x1b\x07\r\u202e"), message
    assert "\n- image web" not in message  # one line per image, as the webhook wrote them


def test_with_client_ca_a_stranger_cannot_make_the_webhook_hold_a_large_body(
    tmp_path: Path, isolated_docker_config: Path
) -> None:
    """Without the client certificate nothing gets past 403, so the webhook does not wait
    for (and buffer) megabytes it will refuse: 64 strangers times 3 MiB is memory."""
    (tmp_path / "ca").mkdir()
    (tmp_path / "api").mkdir()
    ca, api_ca = CA.create(tmp_path / "ca"), CA.create(tmp_path / "api")
    with serve(_policy(tmp_path), ca, tmp_path / "hook", client_ca=api_ca.bundle) as hook:
        hook.ca = ca  # type: ignore[attr-defined]
        with _tls(hook) as sock:
            sock.sendall(b"POST /validate HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n{")
            [(status, _, text)] = _responses(sock, 1)  # at once, not after the body
            assert status == 413 and b"larger than" in text


def test_with_client_ca_a_rotated_client_ca_file_is_picked_up(
    tmp_path: Path, isolated_docker_config: Path
) -> None:
    """The client CA file is reloaded like the serving pair: a CA rotated out stops being
    trusted, and the API server's certificate from the new one gets in, without a restart."""
    for name in ("ca", "old", "new"):
        (tmp_path / name).mkdir()
    ca, old, new = (CA.create(tmp_path / n) for n in ("ca", "old", "new"))
    for who, issuer in (("old", old), ("new", new)):
        issuer.issue(tmp_path / f"{who}.crt", tmp_path / f"{who}.key", common_name="apiserver")
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes(old.bundle.read_bytes())

    def admitted(who: str) -> bool:
        context = ssl.create_default_context(cafile=str(ca.bundle))
        context.load_cert_chain(str(tmp_path / f"{who}.crt"), str(tmp_path / f"{who}.key"))
        try:
            raw = socket.create_connection(("127.0.0.1", hook.server.port), timeout=10)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(_post(json.dumps(_skipped_review("ca")).encode()))
                return _responses(sock, 1)[0][0] == 200
        except (ConnectionError, ssl.SSLError, AssertionError):
            return False

    with serve(_policy(tmp_path), ca, tmp_path / "hook", client_ca=client_ca) as hook:
        assert admitted("old") and not admitted("new")
        client_ca.write_bytes(new.bundle.read_bytes())
        deadline = time.monotonic() + 10  # the files are looked at once a second
        while not admitted("new"):
            assert time.monotonic() < deadline, "the new client CA was never used"
            time.sleep(0.2)
        assert not admitted("old")


def test_connections_that_never_finish_the_handshake_are_bounded(
    tmp_path: Path, isolated_docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its handshake a connection is in no pool; without a bound any pod could hold
    sockets and memory by the thousand for the handshake timeout. The oldest go first, so
    a client that does finish its handshake still gets in."""
    monkeypatch.setattr(_server, "MAX_HANDSHAKES", 4)
    monkeypatch.setattr(_server, "HANDSHAKE_TIMEOUT", 120.0)
    ca = CA.create(tmp_path)
    with serve(_policy(tmp_path), ca, tmp_path / "hook") as hook:
        hook.ca = ca  # type: ignore[attr-defined]
        silent = [socket.create_connection(("127.0.0.1", hook.server.port)) for _ in range(10)]
        try:
            with _tls(hook) as sock:  # the newest: it gets in
                sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                assert _responses(sock, 1)[0][0] == 200
            for held in silent[:6]:  # long before the handshake timeout
                held.settimeout(30)
                assert _closed(held)  # type: ignore[arg-type]
        finally:
            for held in silent:
                held.close()
