"""RegistryClient against a scripted local HTTP server that can lie, fail and challenge.

The real docker-registry never lies about sizes or digests, never 503s and
has no referrers API, so those paths are driven here (127.0.0.1 only).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from gate.credentials import IDENTITY_TOKEN_USERNAME, Credentials
from gate.errors import DigestMismatchError, NotFoundError, RegistryAuthError, RegistryError
from gate.refs import Reference, Repository
from gate.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    RegistryClient,
    digest_of,
    referrers_tag,
)
from gate.registry_auth import realm_may_have_credentials

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
DIGEST = digest_of(MANIFEST)
SECRET = "s3cret-pa55"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    """Send the body chunked, with no Content-Length."""
    length: int | None = None
    """Claim this Content-Length whatever the body is (and close the connection)."""


Handler = Callable[[Seen], "Reply | None"]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs under concurrency: 1 s stalls

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hanging up on a refused body is the point of several tests


class Fake:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering with ``handler`` (None -> 404)."""

    def __init__(self, handler: Handler, address: str = "127.0.0.1") -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                fake.seen.append(seen)
                if seen.route == "/v2/" and not any(s.route == "/v2/" for s in fake.seen[:-1]):
                    reply = fake.handler(seen) or Reply(200, b"{}")
                else:
                    reply = fake.handler(seen) or Reply(
                        404, b'{"errors":[{"code":"NOT_FOUND","message":"nope"}]}'
                    )
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if self.command != "HEAD":
                        for start in range(0, len(reply.body), 1000):
                            part = reply.body[start : start + 1000]
                            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header(
                    "Content-Length",
                    str(reply.length if reply.length is not None else len(reply.body)),
                )
                if reply.length is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.server = _QuietServer((address, 0), H)
        self.server.daemon_threads = True
        self.host = f"{address}:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def repo(self, path: str = "demo/app") -> Repository:
        return Repository(self.host, path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str, route_prefix: str) -> int:
        return sum(1 for s in self.seen if s.method == method and s.route.startswith(route_prefix))


@pytest.fixture
def fake() -> Iterator[Callable[[Handler], Fake]]:
    made: list[Fake] = []

    def make(handler: Handler) -> Fake:
        made.append(Fake(handler))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _client(**kwargs: object) -> RegistryClient:
    client = RegistryClient(**kwargs)  # type: ignore[arg-type]
    client._http.sleep = lambda seconds: None
    return client


def _manifest_reply(data: bytes = MANIFEST, digest: str | None = None) -> Reply:
    headers = {"Content-Type": OCI_MANIFEST}
    if digest is not None:
        headers["Docker-Content-Digest"] = digest
    return Reply(200, data, headers)


# --- reading: sizes and digests --------------------------------------------------------


def test_manifest_over_cap_by_content_length_is_refused(fake: Callable[[Handler], Fake]) -> None:
    server = fake(
        lambda s: Reply(200, b"{}", length=10_000_000) if "manifests" in s.route else None
    )
    with (
        _client(max_manifest_bytes=1000) as client,
        pytest.raises(RegistryError, match="10000000 bytes, over the 1000-byte limit"),
    ):
        client.get_manifest(server.repo(), "v1")


def test_chunked_manifest_over_cap_is_cut(fake: Callable[[Handler], Fake]) -> None:
    server = fake(
        lambda s: Reply(200, b" " * 5000, chunked=True) if "manifests" in s.route else None
    )
    with (
        _client(max_manifest_bytes=1000) as client,
        pytest.raises(RegistryError, match="over the 1000-byte limit"),
    ):
        client.get_manifest(server.repo(), "v1")


def test_manifest_by_digest_must_match(fake: Callable[[Handler], Fake]) -> None:
    other = MANIFEST + b" "
    server = fake(lambda s: _manifest_reply(other) if "manifests" in s.route else None)
    with _client() as client, pytest.raises(DigestMismatchError, match=DIGEST):
        client.get_manifest(server.repo(), DIGEST)


def test_manifest_by_tag_must_match_docker_content_digest(fake: Callable[[Handler], Fake]) -> None:
    lie = "sha256:" + "0" * 64
    server = fake(lambda s: _manifest_reply(digest=lie) if "manifests" in s.route else None)
    with _client() as client, pytest.raises(DigestMismatchError, match="registry says"):
        client.get_manifest(server.repo(), "v1")


def test_manifest_by_tag_and_digest_ok(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: _manifest_reply(digest=DIGEST) if "manifests" in s.route else None)
    with _client() as client:
        by_tag = client.get_manifest(server.repo(), "v1")
        by_digest = client.get_manifest(server.repo(), DIGEST)
    assert by_tag.data == by_digest.data == MANIFEST
    assert by_tag.digest == by_digest.digest == DIGEST
    assert by_tag.media_type == OCI_MANIFEST


def test_media_type_falls_back_to_the_document(fake: Callable[[Handler], Fake]) -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}).encode()
    server = fake(
        lambda s: (
            Reply(200, data, {"Content-Type": "application/json"})
            if "manifests" in s.route
            else None
        )
    )
    with _client() as client:
        assert client.get_manifest(server.repo(), "v1").media_type == DOCKER_MANIFEST


def test_blob_must_match_and_fit(fake: Callable[[Handler], Fake]) -> None:
    blob = b"hello blob"
    good, bad = digest_of(blob), digest_of(b"other")
    server = fake(lambda s: Reply(200, blob) if "blobs" in s.route else None)
    with _client() as client:
        assert client.get_blob(server.repo(), good) == blob
        with pytest.raises(DigestMismatchError, match=bad):
            client.get_blob(server.repo(), bad)
        with pytest.raises(RegistryError, match="over the 4-byte limit"):
            client.get_blob(server.repo(), good, max_bytes=4)


def test_blob_shorter_content_length_lie_fails_the_digest(fake: Callable[[Handler], Fake]) -> None:
    blob = b"0123456789abcdef"
    server = fake(lambda s: Reply(200, blob, length=8) if "blobs" in s.route else None)
    with _client() as client, pytest.raises(DigestMismatchError):
        client.get_blob(server.repo(), digest_of(blob))


def test_blob_longer_content_length_lie_is_an_error(fake: Callable[[Handler], Fake]) -> None:
    blob = b"0123456789abcdef"
    server = fake(lambda s: Reply(200, blob, length=100) if "blobs" in s.route else None)
    with _client() as client, pytest.raises(RegistryError, match="connection broke"):
        client.get_blob(server.repo(), digest_of(blob))


def test_404_names_repository_and_reference(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: None)
    with _client() as client:
        with pytest.raises(
            NotFoundError, match=rf"{server.host}/demo/app has no manifest 'v9' \(NOT_FOUND: nope\)"
        ):
            client.get_manifest(server.repo(), "v9")
        with pytest.raises(NotFoundError, match="has no manifest 'v9'"):
            client.resolve(Reference(server.host, "demo/app", "v9"))
        assert client.find_manifest(server.repo(), "v9") is None


# --- resolve ---------------------------------------------------------------------------


def test_resolve_uses_head_with_every_manifest_type(fake: Callable[[Handler], Fake]) -> None:
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST}
    server = fake(lambda s: Reply(200, MANIFEST, headers) if "manifests" in s.route else None)
    with _client() as client:
        got = client.resolve(Reference(server.host, "demo/app", "v1"))
    assert got == Descriptor(OCI_MANIFEST, DIGEST, len(MANIFEST))
    (head,) = [s for s in server.seen if "manifests" in s.route]
    assert head.method == "HEAD"
    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, "manifest.list.v2+json"):
        assert media_type in head.headers["Accept"]


def test_resolve_falls_back_to_get_without_digest_header(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: _manifest_reply() if "manifests" in s.route else None)
    with _client() as client:
        got = client.resolve(Reference(server.host, "demo/app", "v1"))
    assert got.digest == DIGEST and got.size == len(MANIFEST)
    assert [s.method for s in server.seen if "manifests" in s.route] == ["HEAD", "GET"]


def test_resolve_with_tag_and_digest_asks_for_the_digest(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: _manifest_reply() if s.route.endswith(DIGEST) else None)
    with _client() as client:
        got = client.resolve(Reference(server.host, "demo/app", "v1", DIGEST))
    assert got.digest == DIGEST


# --- retries and reachability ----------------------------------------------------------


def test_retries_5xx_then_succeeds(fake: Callable[[Handler], Fake]) -> None:
    calls = {"n": 0}

    def handler(s: Seen) -> Reply | None:
        if "manifests" not in s.route:
            return None
        calls["n"] += 1
        return Reply(503, b"busy") if calls["n"] < 3 else _manifest_reply()

    server = fake(handler)
    with _client(retries=3) as client:
        assert client.get_manifest(server.repo(), DIGEST).digest == DIGEST
        assert client.requests_made == 1 + 3  # ping + three tries


def test_retry_after_is_honoured_within_reason(fake: Callable[[Handler], Fake]) -> None:
    answers = iter(
        [Reply(429, headers={"Retry-After": "2"}), Reply(429, headers={"Retry-After": "3600"})]
    )

    def handler(s: Seen) -> Reply | None:
        if "manifests" not in s.route:
            return None
        return next(answers, None) or _manifest_reply()

    server = fake(handler)
    slept: list[float] = []
    with _client(retries=3) as client:
        client._http.sleep = slept.append
        client.get_manifest(server.repo(), DIGEST)
    assert slept == [2.0, 10.0]


def test_retries_are_bounded(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: Reply(500, b"") if "manifests" in s.route else None)
    with _client(retries=2) as client, pytest.raises(RegistryError, match="answered 500"):
        client.get_manifest(server.repo(), "v1")
    assert server.count("GET", "/v2/demo/app/manifests") == 3


def test_unreachable_registry(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: None)
    host = server.host
    server.close()
    with (
        _client(retries=1) as client,
        pytest.raises(RegistryError, match=rf"cannot reach registry {host}: connection refused"),
    ):
        client.resolve(Reference(host, "demo/app", "v1"))
    assert client.requests_made == 2


# --- auth ------------------------------------------------------------------------------


def _basic_ok(seen: Seen, user: str = "me", password: str = SECRET) -> bool:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return seen.headers.get("Authorization") == expected


def _basic_registry(s: Seen) -> Reply:
    if not _basic_ok(s):
        return Reply(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
    if s.route == "/v2/":
        return Reply(200, b"{}")
    return _manifest_reply()


def test_basic_auth(fake: Callable[[Handler], Fake]) -> None:
    server = fake(_basic_registry)
    ref = Reference(server.host, "demo/app", None, DIGEST)
    with _client(credentials=Credentials("me", SECRET, server.host)) as client:
        assert client.get_manifest(server.repo(), DIGEST).digest == DIGEST
        client.resolve(ref)
        # After the first challenge Basic goes with every request: no more 401s.
        assert [s.route for s in server.seen].count("/v2/") == 1
    for wrong in (Credentials("me", "wrong", server.host), None):
        with _client(credentials=wrong) as client, pytest.raises(RegistryAuthError) as caught:
            client.resolve(ref)
        message = str(caught.value)
        assert server.host in message and "docker login" in message
        assert ("refused" in message) == (wrong is not None)
        assert "wrong" not in message and SECRET not in message


def test_403_is_an_auth_error(fake: Callable[[Handler], Fake]) -> None:
    server = fake(lambda s: Reply(403, b"{}") if "manifests" in s.route else None)
    with _client() as client, pytest.raises(RegistryAuthError, match="needs credentials"):
        client.get_manifest(server.repo(), "v1")


class TokenFake:
    """A registry whose /token issues numbered tokens; only the newest token is accepted."""

    def __init__(self, make: Callable[[Handler], Fake], *, expires_in: object = 3600) -> None:
        self.issued = 0
        self.token_requests: list[Seen] = []
        self.expires_in = expires_in
        self.server = make(self.handle)

    def challenge(self, scope: str = "", error: str = "") -> Reply:
        value = f'Bearer realm="http://{self.server.host}/token",service="fake-svc"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return Reply(401, b"{}", {"WWW-Authenticate": value})

    def handle(self, s: Seen) -> Reply | None:
        if s.route == "/token":
            self.token_requests.append(s)
            if s.method == "POST":
                form = parse_qs(s.body.decode())
                if form.get("refresh_token") != ["refresh-me"]:
                    return Reply(401, b"{}")
            elif not _basic_ok(s):
                return Reply(401, b"{}")
            self.issued += 1
            body = {"access_token": f"tok-{self.issued}", "expires_in": self.expires_in}
            return Reply(200, json.dumps(body).encode())
        if s.headers.get("Authorization") != f"Bearer tok-{self.issued}" or not self.issued:
            repo = s.route.split("/")[2:4]
            return self.challenge(f"repository:{'/'.join(repo)}:pull" if s.route != "/v2/" else "")
        return _manifest_reply(digest=DIGEST)


def test_bearer_tokens_are_fetched_once_per_scope(fake: Callable[[Handler], Fake]) -> None:
    tokens = TokenFake(fake)
    host = tokens.server.host
    with _client(credentials=Credentials("me", SECRET, tokens.server.host)) as client:
        for _ in range(3):
            client.resolve(Reference(host, "demo/app", "v1"))
        assert len(tokens.token_requests) == 1
        (first,) = tokens.token_requests
        assert first.query == {"service": ["fake-svc"], "scope": ["repository:demo/app:pull"]}
        assert _basic_ok(first)
        # A push asks for pull,push: a new scope, a new token.
        client.push_manifest(Repository(host, "demo/app"), "v2", MANIFEST, OCI_MANIFEST)
        assert tokens.token_requests[-1].query["scope"] == ["repository:demo/app:pull,push"]
        # Only one 401: the first ping; every later request carried its token up front.
        assert sum(1 for s in tokens.server.seen if s.route == "/v2/") == 1


def test_expired_token_is_renewed_once(fake: Callable[[Handler], Fake]) -> None:
    tokens = TokenFake(fake)
    ref = Reference(tokens.server.host, "demo/app", "v1")
    with _client(credentials=Credentials("me", SECRET, tokens.server.host)) as client:
        client.resolve(ref)
        tokens.issued += 1  # the server moves on: our cached token is now refused
        client.resolve(ref)
    assert len(tokens.token_requests) == 2


def test_concurrent_requests_share_one_token(fake: Callable[[Handler], Fake]) -> None:
    tokens = TokenFake(fake)
    ref = Reference(tokens.server.host, "demo/app", "v1")
    with (
        _client(credentials=Credentials("me", SECRET, tokens.server.host)) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(lambda _: client.resolve(ref), range(32)))
    assert {r.digest for r in results} == {DIGEST}
    assert len(tokens.token_requests) == 1
    assert client.requests_made == 1 + 1 + 32  # ping, token, HEADs


def test_bearer_with_bad_credentials(fake: Callable[[Handler], Fake]) -> None:
    tokens = TokenFake(fake)
    with (
        _client(credentials=Credentials("me", "nope-nope", tokens.server.host)) as client,
        pytest.raises(RegistryAuthError, match="refused our credentials") as caught,
    ):
        client.resolve(Reference(tokens.server.host, "demo/app", "v1"))
    assert "nope-nope" not in str(caught.value)


def test_identity_token_is_a_refresh_grant(fake: Callable[[Handler], Fake]) -> None:
    tokens = TokenFake(fake)
    creds = Credentials(IDENTITY_TOKEN_USERNAME, "refresh-me", tokens.server.host)
    with _client(credentials=creds) as client:
        client.resolve(Reference(tokens.server.host, "demo/app", "v1"))
    (request,) = tokens.token_requests
    assert request.method == "POST" and "Authorization" not in request.headers
    form = parse_qs(request.body.decode())
    assert form["grant_type"] == ["refresh_token"] and form["service"] == ["fake-svc"]
    assert form["scope"] == ["repository:demo/app:pull"]


def test_token_reply_without_token(fake: Callable[[Handler], Fake]) -> None:
    def handler(s: Seen) -> Reply | None:
        if s.route == "/token":
            return Reply(200, b'{"expires_in": 10}')
        return Reply(401, b"", {"WWW-Authenticate": f'Bearer realm="http://{server.host}/token"'})

    server = fake(handler)
    with _client() as client, pytest.raises(RegistryError, match="sent no usable token"):
        client.resolve(Reference(server.host, "demo/app", "v1"))


# --- writing ---------------------------------------------------------------------------


class Store:
    """A minimal in-memory registry for the push paths."""

    def __init__(self, make: Callable[[Handler], Fake], *, location: str = "relative",
                 oci_subject: bool = False) -> None:  # fmt: skip
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.location = location
        self.oci_subject = oci_subject
        self.elsewhere: Fake | None = None
        if location == "elsewhere":
            self.elsewhere = make(self.handle)
        self.server = make(self.handle)

    def handle(self, s: Seen) -> Reply | None:
        route = s.route
        if "/blobs/uploads/" in route:
            if s.method == "POST":
                path = "/v2/demo/app/blobs/uploads/u-1?_state=abc"
                where = {
                    "relative": path,
                    "absolute": f"http://{self.server.host}{path}",
                    "elsewhere": f"http://{self.elsewhere.host if self.elsewhere else ''}{path}",
                }[self.location]
                return Reply(202, headers={"Location": where})
            if s.method == "PUT":
                assert s.query["_state"] == ["abc"]
                (digest,) = s.query["digest"]
                assert digest == digest_of(s.body)
                self.blobs[digest] = s.body
                return Reply(201)
        if "/blobs/" in route:
            digest = route.rsplit("/", 1)[1]
            return Reply(200, self.blobs[digest]) if digest in self.blobs else None
        if "/manifests/" in route:
            reference = route.rsplit("/", 1)[1]
            if s.method == "PUT":
                stored = (s.body, s.headers["Content-Type"])
                self.manifests[reference] = self.manifests[digest_of(s.body)] = stored
                headers = {"Docker-Content-Digest": digest_of(s.body)}
                subject = json.loads(s.body).get("subject")
                if self.oci_subject and subject:
                    headers["OCI-Subject"] = subject["digest"]
                return Reply(201, headers=headers)
            if reference in self.manifests:
                body, media_type = self.manifests[reference]
                return Reply(200, body, {"Content-Type": media_type})
        return None


@pytest.mark.parametrize("location", ["relative", "absolute"])
def test_push_blob_uploads_once(fake: Callable[[Handler], Fake], location: str) -> None:
    store = Store(fake, location=location)
    with _client() as client:
        digest = client.push_blob(store.server.repo(), b"layer bytes")
        assert client.push_blob(store.server.repo(), b"layer bytes") == digest
    assert store.blobs == {digest: b"layer bytes"}
    assert store.server.count("POST", "/v2/demo/app/blobs/uploads/") == 1
    assert store.server.count("HEAD", "/v2/demo/app/blobs/") == 2


def test_credentials_do_not_follow_a_location_to_another_host(
    fake: Callable[[Handler], Fake],
) -> None:
    store = Store(fake, location="elsewhere")

    def guarded(s: Seen) -> Reply | None:
        if s.route != "/v2/" and not _basic_ok(s):
            return Reply(401, b"", {"WWW-Authenticate": 'Basic realm="x"'})
        return store.handle(s)

    store.server.handler = guarded
    with _client(credentials=Credentials("me", SECRET, store.server.host)) as client:
        client.push_blob(store.server.repo(), b"data")
    assert store.elsewhere is not None
    (put,) = store.elsewhere.seen
    assert put.method == "PUT" and "Authorization" not in put.headers


def _referrer(subject: str, artifact_type: str = "application/example+json") -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest_of(b"{}"),
                "size": 2,
            },
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(MANIFEST)},
            "annotations": {"org.example": artifact_type},
        }
    ).encode()


def test_push_with_subject_maintains_the_tag_schema_index(fake: Callable[[Handler], Fake]) -> None:
    store = Store(fake)
    repo = store.server.repo()
    first, second = _referrer(DIGEST, "application/a"), _referrer(DIGEST, "application/b")
    with _client() as client:
        assert client.referrers(repo, DIGEST) == []
        one = client.push_manifest(repo, digest_of(first), first, OCI_MANIFEST)
        two = client.push_manifest(repo, "some-tag", second, OCI_MANIFEST)
        client.push_manifest(repo, "again", second, OCI_MANIFEST)  # no duplicate entry
        found = client.referrers(repo, DIGEST)
        only_b = client.referrers(repo, DIGEST, "application/b")
    assert [d.digest for d in found] == [one, two]
    assert [d.artifact_type for d in found] == ["application/a", "application/b"]
    assert found[0].annotations == {"org.example": "application/a"}
    assert found[0].size == len(first)
    assert [d.digest for d in only_b] == [two]
    index, media_type = store.manifests[referrers_tag(DIGEST)]
    assert media_type == OCI_INDEX and json.loads(index)["mediaType"] == OCI_INDEX


def test_oci_subject_header_means_the_registry_did_it(fake: Callable[[Handler], Fake]) -> None:
    store = Store(fake, oci_subject=True)
    data = _referrer(DIGEST)
    with _client() as client:
        client.push_manifest(store.server.repo(), "t", data, OCI_MANIFEST)
    assert referrers_tag(DIGEST) not in store.manifests


def test_push_by_wrong_digest_is_refused(fake: Callable[[Handler], Fake]) -> None:
    store = Store(fake)
    with _client() as client, pytest.raises(DigestMismatchError, match="does not hash"):
        client.push_manifest(store.server.repo(), "sha256:" + "1" * 64, MANIFEST, OCI_MANIFEST)
    assert store.manifests == {}


# --- pagination and the referrers API --------------------------------------------------


def test_list_tags_follows_links(fake: Callable[[Handler], Fake]) -> None:
    pages = {
        "": (["a", "b"], '</v2/demo/app/tags/list?last=b&n=2>; rel="next"'),
        "b": (["c", "d"], '<http://HOST/v2/demo/app/tags/list?last=d&n=2>; rel="next"'),
        "d": (["e"], ""),
    }

    def handler(s: Seen) -> Reply | None:
        if s.route != "/v2/demo/app/tags/list":
            return None
        tags, link = pages[s.query.get("last", [""])[0]]
        headers = {"Link": link.replace("HOST", server.host)} if link else {}
        return Reply(200, json.dumps({"name": "demo/app", "tags": tags}).encode(), headers)

    server = fake(handler)
    with _client() as client:
        assert client.list_tags(server.repo()) == ["a", "b", "c", "d", "e"]


def _index(*entries: dict[str, object]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}
    ).encode()


def _entry(n: int, artifact_type: str) -> dict[str, object]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": "sha256:" + f"{n:x}" * 64,
        "size": n,
        "artifactType": artifact_type,
    }


@pytest.mark.parametrize("applied", [True, False])
def test_referrers_api_filters_and_pages(fake: Callable[[Handler], Fake], applied: bool) -> None:
    def handler(s: Seen) -> Reply | None:
        if not s.route.startswith("/v2/demo/app/referrers/"):
            return None
        assert s.query["artifactType"] == ["application/b"]
        headers = {"Content-Type": OCI_INDEX}
        if applied:
            headers["OCI-Filters-Applied"] = "artifactType"
        if "page" not in s.query:
            headers["Link"] = (
                f'</v2/demo/app/referrers/{DIGEST}?artifactType=application%2Fb&page=2>; rel="next"'
            )
            entries = (
                [_entry(1, "application/b")]
                if applied
                else [_entry(1, "application/a"), _entry(2, "application/b")]
            )
            return Reply(200, _index(*entries), headers)
        return Reply(200, _index(_entry(3, "application/b")), headers)

    server = fake(handler)
    with _client() as client:
        found = client.referrers(server.repo(), DIGEST, "application/b")
    assert {d.artifact_type for d in found} == {"application/b"}
    assert len(found) == 2
    assert not any(s.route.startswith("/v2/demo/app/manifests/sha256-") for s in server.seen)


def test_referrers_skip_malformed_entries(fake: Callable[[Handler], Fake]) -> None:
    index = _index(_entry(1, "application/a"), {"mediaType": "x", "digest": "garbage", "size": 1})
    server = fake(
        lambda s: (
            Reply(200, index, {"Content-Type": OCI_INDEX}) if "/referrers/" in s.route else None
        )
    )
    with _client() as client:
        assert [d.size for d in client.referrers(server.repo(), DIGEST)] == [1]


# --- where a token realm may take our credentials -------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "registry", "realm", "allowed"),
    [
        ("https", "ghcr.io", "https://ghcr.io/token", True),
        ("https", "registry-1.docker.io", "https://auth.docker.io/token", True),
        ("http", "127.0.0.1:5000", "https://127.0.0.2:5001/token", True),
        ("http", "127.0.0.1:5000", "http://127.0.0.1:5001/token", True),
        ("http", "LOCALHOST:5000", "http://localhost/token", True),
        ("https", "ghcr.io", "http://ghcr.io/token", False),
        ("https", "127.0.0.1:5000", "http://127.0.0.1:5001/token", False),
        ("http", "127.0.0.1:5000", "http://127.0.0.2:5000/token", False),
        ("http", "127.0.0.1:5000", "http://localhost:5000/token", False),
        ("http", "registry.local", "http://registry.local.evil.example/token", False),
        ("http", "127.0.0.1:5000", "ftp://127.0.0.1/token", False),
        ("http", "127.0.0.1:5000", "/token", False),
        ("http", "[::1]:5000", "http://[::1]:5001/token", True),
    ],
)
def test_realm_may_have_credentials(scheme: str, registry: str, realm: str, allowed: bool) -> None:
    assert realm_may_have_credentials(scheme, registry, realm) is allowed


def test_a_withheld_realm_is_asked_anonymously_and_the_error_says_why(
    fake: Callable[[Handler], Fake],
) -> None:
    """A registry on one host sends us to a plain-HTTP realm on another (here: 127.0.0.2)."""
    realm_seen: list[Seen] = []

    def realm(s: Seen) -> Reply:
        realm_seen.append(s)
        return Reply(200, b'{"token": "anon"}')

    token_host = Fake(realm, address="127.0.0.2")
    try:
        server = fake(
            lambda s: Reply(
                401, b"{}", {"WWW-Authenticate": f'Bearer realm="http://{token_host.host}/t"'}
            )
        )
        with (
            _client(credentials=Credentials("me", SECRET, server.host)) as client,
            pytest.raises(RegistryAuthError, match="did not send it the credentials") as caught,
        ):
            client.resolve(Reference(server.host, "demo/app", "v1"))
    finally:
        token_host.close()
    assert realm_seen and all("Authorization" not in s.headers for s in realm_seen)
    assert SECRET not in str(caught.value) and token_host.host in str(caught.value)
