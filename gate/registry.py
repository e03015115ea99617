"""OCI distribution client: resolve, manifests, blobs, tags, referrers, push.

Speaks the OCI distribution API (FORMATS.md §5) through ``registry_http``,
which handles sessions, auth and retries. Every byte fetched is checked
against the digest that named it, and every body is read under a size cap,
because a registry is exactly what an attacker would like to lie to us.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

import requests

from gate import strict_json
from gate.credentials import Credentials
from gate.descriptors import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    check_digest,
    digest_of,
    referrers_tag,
)
from gate.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    NotFoundError,
    OversizedError,
    RegistryError,
)
from gate.refs import Reference, Repository, parse_digest
from gate.registry_deadline import finish
from gate.registry_http import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, Transport, drain, read_prefix

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "RegistryClient",
    "digest_of",
    "referrers_tag",
]

log = logging.getLogger(__name__)
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_MAX_ERROR_BODY = 4096
_MAX_PAGES = 10_000
_MAX_REFERRER_PAGES = 8


class _NoSuchRepository(NotFoundError):
    """The referrers API answered NAME_UNKNOWN: the repository, not the API, is missing."""


def _is_digest(reference: str) -> bool:
    return ":" in reference


def _error_detail(response: requests.Response) -> str:
    """``CODE: message`` from a distribution error body, if there is one."""
    try:
        body = strict_json.loads_object(
            read_prefix(response, _MAX_ERROR_BODY), "an error body", RegistryError
        )
        first = (body.get("errors") or [])[0]
        code, message = str(first.get("code"))[:40], str(first.get("message"))[:200]
        return f" ({code}: {' '.join(message.split())})"
    except (RegistryError, AttributeError, IndexError, TypeError, KeyError):
        return ""


def _next_link(response: requests.Response) -> str | None:
    """The ``Link: <url>; rel="next"`` target, resolved against the request URL."""
    for part in response.headers.get("Link", "").split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        rel = params.replace(" ", "").replace('"', "")
        if "rel=next" in rel and target.startswith("<") and target.endswith(">"):
            url = urljoin(response.url, target[1:-1])
            here, there = urlsplit(response.url), urlsplit(url)
            if (there.scheme, there.netloc) != (here.scheme, here.netloc):
                raise RegistryError(
                    f"registry {here.netloc} sent a next-page link to another host; refusing it"
                )
            return url
    return None


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# --- the client ------------------------------------------------------------------------


class RegistryClient:
    """A thread-safe client for many registries; share one per process and ``close()`` it."""

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        insecure: Iterable[str] = (),
        ca_bundle: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_manifest_bytes: int = 4 * 1024 * 1024,
        max_blob_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        """``timeout``: overall seconds per request, body included (not per read).

        ``concurrency``: requests in flight to one registry; size worker pools to it.
        """
        self.max_manifest_bytes = max_manifest_bytes
        self.max_blob_bytes = max_blob_bytes
        self._http = Transport(
            credentials=credentials,
            insecure=tuple(insecure),
            ca_bundle=ca_bundle,
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
        )
        self.concurrency = self._http.concurrency
        self.timeout = timeout
        self._index_locks: dict[tuple[Repository, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._referrers_api: dict[str, bool] = {}
        """Per registry: whether it serves the referrers API (a 404 that is not NAME_UNKNOWN
        says it does not; a 200 is never undone)."""
        self._probe_locks: dict[str, threading.Lock] = {}

    @property
    def credentials(self) -> Credentials:
        """Where this client's registry credentials come from (secrets hidden from repr)."""
        return self._http.credentials

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far, retries, redirects and token requests included."""
        return self._http.requests_made

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --

    def _request(
        self, repo: Repository, method: str, path: str, *, push: bool = False, **kwargs: Any
    ) -> requests.Response:
        if not path.startswith(("/", "http://", "https://")):
            path = f"/v2/{repo.path}/{path}"
        return self._http.request(repo.registry, method, path, repo=repo.path, push=push, **kwargs)

    def _fail(self, response: requests.Response, repo: Repository, what: str) -> RegistryError:
        """The error for an unexpected status; ``what`` names the thing, e.g. "manifest 'v1'"."""
        detail = _error_detail(response)
        # A result row names the image already: there, its manifest is "the manifest".
        manifest = what.startswith("manifest '")
        short = "the manifest" if manifest else what
        if response.status_code == 404:
            lost = f"not found in registry {repo.registry}" if manifest else f"{what} not found"
            return NotFoundError(
                f"{repo} has no {what}{detail}; check the name, tag or digest",
                brief=f"{lost}{detail}; check the name, tag or digest",
            )
        answered = f"registry {repo.registry} answered {response.status_code} {response.reason}"
        return RegistryError(
            f"{answered} for {what} in {repo}{detail}", brief=f"{answered} for {short}{detail}"
        )

    def _read(self, response: requests.Response, cap: int, what: str) -> bytes:
        """The whole body, refusing more than ``cap`` bytes before or while reading."""
        chunks: list[bytes] = []
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > cap:
                raise OversizedError(
                    f"{what} is {int(length)} bytes, over the {cap}-byte limit; refusing it"
                )
            total = 0
            for chunk in response.iter_content(chunk_size=65536):
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:
                    raise OversizedError(f"{what} is over the {cap}-byte limit; refusing it")
        except requests.RequestException as e:
            finish(response)  # the deadline's sentence, when that is what cut the body
            raise RegistryError(
                f"the registry connection broke while reading {what}; try again"
            ) from e
        except BaseException:
            response.close()
            raise
        finish(response)
        return b"".join(chunks)

    # -- reading --

    def resolve(self, ref: Reference) -> Descriptor:
        """Tag or digest -> descriptor, with a HEAD if the registry sends Docker-Content-Digest.

        With both tag and digest the digest wins (as docker does). A tag's HEAD
        digest is trusted as served; fetch the manifest to check bytes.
        """
        repo, reference = ref.repository, ref.identifier
        response = self._request(
            repo, "HEAD", f"manifests/{quote(reference, safe=':')}", headers={"Accept": _ACCEPT}
        )
        if response.status_code != 200:
            raise self._fail(response, repo, f"manifest '{reference}'")
        drain(response)
        digest = response.headers.get("Docker-Content-Digest", "")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        length = response.headers.get("Content-Length", "")
        try:
            parse_digest(digest)
        except InvalidReferenceError:
            digest = ""
        if digest and media_type and length.isdigit():
            if _is_digest(reference) and digest != reference:
                raise DigestMismatchError(
                    f"{repo} answered manifest {reference} with digest {digest}; "
                    "the registry is inconsistent"
                )
            return Descriptor(media_type, digest, int(length))
        return self.get_manifest(repo, reference).descriptor

    def find_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        """``get_manifest``, or None when there is no such manifest (e.g. no ``.sig`` tag yet)."""
        try:
            return self.get_manifest(repo, reference)
        except NotFoundError:
            return None

    def get_manifest(self, repo: Repository, reference: str) -> Manifest:
        """Fetch a manifest or index by tag or digest, size-capped and digest-checked.

        Raises NotFoundError (404), DigestMismatchError (bytes do not match the
        requested digest or the registry's Docker-Content-Digest), RegistryError.
        """
        by_digest = _is_digest(reference)
        if by_digest:
            parse_digest(reference)
        response = self._request(
            repo, "GET", f"manifests/{quote(reference, safe=':')}", headers={"Accept": _ACCEPT}
        )
        if response.status_code != 200:
            raise self._fail(response, repo, f"manifest '{reference}'")
        what = f"manifest '{reference}' of {repo}"
        data = self._read(response, self.max_manifest_bytes, what)
        header_digest = response.headers.get("Docker-Content-Digest")
        if by_digest:
            check_digest(data, reference, what)
            digest = reference
        else:
            digest = digest_of(data)
            if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
                raise DigestMismatchError(
                    f"{what} hashes to {digest} but the registry says {header_digest}; refusing it"
                )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            try:
                declared = strict_json.loads_object(data, what, RegistryError).get("mediaType")
            except RegistryError:
                declared = None
            media_type = declared if isinstance(declared, str) and declared else media_type
        return Manifest(data, media_type, digest)

    def get_blob(self, repo: Repository, digest: str, *, max_bytes: int | None = None) -> bytes:
        """Fetch a blob, size-capped (default ``max_blob_bytes``) and digest-checked."""
        parse_digest(digest)
        cap = self.max_blob_bytes if max_bytes is None else max_bytes
        response = self._request(repo, "GET", f"blobs/{digest}")
        if response.status_code != 200:
            raise self._fail(response, repo, f"blob {digest}")
        what = f"blob {digest} of {repo}"
        data = self._read(response, cap, what)
        check_digest(data, digest, what)
        return data

    def list_tags(self, repo: Repository, *, max_pages: int = _MAX_PAGES) -> list[str]:
        """Every tag in ``repo``, following ``Link`` pagination.

        More than ``max_pages`` pages is an error (the caller asks another way).
        """
        tags: list[str] = []
        url: str | None = "tags/list"
        seen: set[str] = set()
        while url is not None:
            if len(seen) >= max_pages:
                raise RegistryError(f"{repo} has more than {max_pages} pages of tags")
            seen.add(url)
            response = self._request(repo, "GET", url)
            if response.status_code != 200:
                raise self._fail(response, repo, "tag list")
            body = self._read(response, self.max_manifest_bytes, f"the tag list of {repo}")
            document = strict_json.loads_object(body, f"the tag list of {repo}", RegistryError)
            page = document.get("tags") or []
            if not isinstance(page, list):
                raise RegistryError(
                    f"registry {repo.registry} sent a malformed tag list for {repo}"
                )
            tags += [t for t in page if isinstance(t, str)]
            url = _next_link(response)
            if url in seen:
                break
        return tags

    def referrers(
        self, repo: Repository, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: the referrers API, else the tag schema.

        NOTE: distribution-spec: only a 404 means "no referrers API" (L708-710);
        an ignored ``artifactType`` filter (no OCI-Filters-Applied) is applied here.
        """
        parse_digest(digest)
        if self.has_referrers_api(repo, digest, artifact_type):
            return self._referrers_api_call(repo, digest, artifact_type)
        return self._referrers_from_tag(repo, digest, artifact_type)

    def has_referrers_api(
        self, repo: Repository, digest: str, artifact_type: str | None = None
    ) -> bool:
        """Whether ``repo``'s registry serves the referrers API: asked once, then known.

        One caller per registry asks (with ``digest``); the others wait for its
        answer rather than each spending a request on the same question.
        """
        parse_digest(digest)
        registry = repo.registry
        if registry not in self._referrers_api:
            with self._lock:
                probe = self._probe_locks.setdefault(registry, threading.Lock())
            with probe:
                if registry not in self._referrers_api:
                    with contextlib.suppress(_NoSuchRepository):
                        self._referrers_api_call(repo, digest, artifact_type)
        return self._referrers_api.get(registry, False)

    def _referrers_api_call(
        self, repo: Repository, digest: str, artifact_type: str | None
    ) -> list[Descriptor]:
        url: str | None = f"referrers/{digest}"
        if artifact_type is not None:
            url = f"{url}?{urlencode({'artifactType': artifact_type})}"
        found: list[Descriptor] = []
        filtered = False
        seen: set[str] = set()
        while url is not None and len(seen) < _MAX_REFERRER_PAGES:
            seen.add(url)
            response = self._request(repo, "GET", url, headers={"Accept": OCI_INDEX})
            if response.status_code == 404 and not found:
                # NOTE: distribution-spec: a registry with the API answers 200 even when there
                # are no referrers, so a 404 means "no API", unless it says the repository
                # itself is unknown (NAME_UNKNOWN): that one says nothing about the others.
                detail = _error_detail(response)
                if "NAME_UNKNOWN" in detail:
                    raise _NoSuchRepository(f"{repo} does not exist{detail}")
                if self._referrers_api.get(repo.registry):  # a 200 once is never undone
                    raise RegistryError(
                        f"registry {repo.registry} served the referrers API before and now "
                        f"answers 404 for the referrers of {digest[:19]}…; refusing to guess"
                    )
                self._referrers_api[repo.registry] = False
                return self._referrers_from_tag(repo, digest, artifact_type)
            if response.status_code != 200:
                raise self._fail(response, repo, f"referrers of {digest}")
            self._referrers_api[repo.registry] = True
            body = self._read(
                response, self.max_manifest_bytes, f"the referrers of {digest} in {repo}"
            )
            filtered = "artifacttype" in response.headers.get("OCI-Filters-Applied", "").lower()
            found += self._index_entries(
                Manifest(body, OCI_INDEX, digest_of(body)), artifact_type, filtered
            )
            url = _next_link(response)
            if url in seen:
                break
        return found

    def _referrers_from_tag(
        self, repo: Repository, digest: str, artifact_type: str | None
    ) -> list[Descriptor]:
        index = self.find_manifest(repo, referrers_tag(digest))
        return [] if index is None else self._index_entries(index, artifact_type, filtered=False)

    @staticmethod
    def _index_entries(
        index: Manifest, artifact_type: str | None, filtered: bool
    ) -> list[Descriptor]:
        entries = index.json().get("manifests") or []
        if not isinstance(entries, list):
            raise RegistryError(f"referrers index {index.digest} has a malformed 'manifests' list")
        found: list[Descriptor] = []
        for entry in entries:
            try:
                found.append(Descriptor.from_dict(entry))
            except RegistryError as e:
                # Anyone who can push can write this index; one bad entry must not hide the rest.
                log.warning("skipping a malformed entry in referrers index %s: %s", index.digest, e)
        if artifact_type is not None and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    # -- writing --

    def push_blob(self, repo: Repository, data: bytes) -> str:
        """Upload ``data`` unless the registry has it; returns its sha256 digest."""
        digest = digest_of(data)
        head = self._request(repo, "HEAD", f"blobs/{digest}", push=True)
        drain(head)
        if head.status_code == 200:
            return digest
        start = self._request(repo, "POST", "blobs/uploads/", push=True)
        if start.status_code not in (201, 202) or not start.headers.get("Location"):
            raise self._fail(start, repo, f"blob upload of {digest}")
        drain(start)
        location = urljoin(start.url, start.headers["Location"])
        done = self._request(
            repo,
            "PUT",
            _with_query(location, digest=digest),
            push=True,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code not in (201, 204):
            raise self._fail(done, repo, f"blob upload of {digest}")
        drain(done)
        return digest

    def push_manifest(self, repo: Repository, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; returns its digest.

        NOTE: distribution-spec L544-557: when a manifest with ``subject`` is
        accepted without an ``OCI-Subject`` header, the client maintains the
        ``sha256-<hex>`` tag-schema index itself.
        """
        digest = digest_of(data)
        if (
            _is_digest(reference)
            and digest_of(data, parse_digest(reference).split(":")[0]) != reference
        ):
            raise DigestMismatchError(
                f"the manifest to push does not hash to {reference}; push it by tag"
            )
        manifest = Manifest(data, media_type, digest)
        subject = manifest.json().get("subject")
        if subject is not None:
            try:
                subject = Descriptor.from_dict(subject).digest
            except RegistryError as e:
                raise RegistryError(f"the manifest to push has a malformed subject: {e}") from e
        response = self._request(
            repo,
            "PUT",
            f"manifests/{quote(reference, safe=':')}",
            push=True,
            data=data,
            headers={"Content-Type": media_type},
        )
        if response.status_code not in (200, 201, 202):
            raise self._fail(response, repo, f"manifest push to '{reference}'")
        drain(response)
        if subject is not None and not response.headers.get("OCI-Subject"):
            self._add_referrer(repo, subject, manifest)
        return digest

    def _add_referrer(self, repo: Repository, subject: str, manifest: Manifest) -> None:
        """Append ``manifest`` to the tag-schema index of ``subject`` (read-modify-write)."""
        body = manifest.json()
        config = body.get("config") if isinstance(body.get("config"), dict) else {}
        entry: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.data),
        }
        artifact_type = body.get("artifactType") or (config or {}).get("mediaType")
        if isinstance(artifact_type, str):
            entry["artifactType"] = artifact_type
        if isinstance(body.get("annotations"), dict) and body["annotations"]:
            entry["annotations"] = body["annotations"]
        tag = referrers_tag(subject)
        with self._lock:
            lock = self._index_locks.setdefault((repo, tag), threading.Lock())
        with lock:  # serialises our own threads; other writers can still race (as the spec allows)
            current = self.find_manifest(repo, tag)
            if current is None:
                index: dict[str, Any] = {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [],
                }
            else:
                index = current.json()
                if current.media_type != OCI_INDEX or not isinstance(index.get("manifests"), list):
                    raise RegistryError(
                        f"tag '{tag}' in {repo} holds something other than a referrers index; "
                        "remove it"
                    )
            if any(
                isinstance(m, dict) and m.get("digest") == manifest.digest
                for m in index["manifests"]
            ):
                return
            index["manifests"].append(entry)
            self.push_manifest(
                repo, tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX
            )
