"""An in-memory OCI 1.1 registry with the referrers API, behind tests/servers/recorder.py.

docker-registry 2.8 has no referrers API; registries that do (zot, Harbor, ...) answer
``404 NAME_UNKNOWN`` for the referrers of a repository they do not have, as
distribution-spec allows ("Assuming a repository is found, this request MUST
return a 200"). Every answer waits ``latency`` seconds, like a registry that is
not on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from gate.credentials import Credentials
from gate.refs import Reference, Repository
from gate.registry import RegistryClient
from tests.servers.recorder import Recorder, Reply, Request

_NAME = r"(?P<name>[a-z0-9._/-]+?)"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error(status: int, code: str) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": code.lower()}]})


@dataclass
class Oci11Registry:
    latency: float = 0.05
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    referrers: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = Recorder()
        self.server.route(None, r"/.*", self._handle)

    def start(self) -> Oci11Registry:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(self, **kwargs: Any) -> RegistryClient:
        kwargs.setdefault("credentials", Credentials())
        return RegistryClient(**kwargs)

    def repository(self, path: str) -> Repository:
        return Repository(self.host, path)

    def reference(self, path: str, tag: str | None = None, digest: str | None = None) -> Reference:
        return Reference(self.host, path, tag, digest)

    # --- serving -------------------------------------------------------------------------

    def _handle(self, r: Request) -> Reply:
        reply = self._answer(r)
        return Reply(reply.status, reply.body, reply.headers, self.latency)

    def _answer(self, r: Request) -> Reply:
        if r.path in ("/v2/", "/v2"):
            return Reply(200, {})
        if m := re.fullmatch(rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)", r.path):
            return self._manifest(r, m["name"], m["ref"])
        if m := re.fullmatch(rf"/v2/{_NAME}/blobs/uploads/(?P<id>[^/]*)", r.path):
            return self._upload(r, m["name"], m["id"])
        if m := re.fullmatch(rf"/v2/{_NAME}/blobs/(?P<digest>[^/]+)", r.path):
            data = self.blobs.get(m["digest"])
            if data is None or m["name"] not in self.tags:
                return _error(404, "BLOB_UNKNOWN")
            return Reply(
                200,
                data,
                {"Content-Type": "application/octet-stream", "Docker-Content-Digest": m["digest"]},
            )
        if m := re.fullmatch(rf"/v2/{_NAME}/tags/list", r.path):
            if m["name"] not in self.tags:
                return _error(404, "NAME_UNKNOWN")
            return Reply(200, {"name": m["name"], "tags": sorted(self.tags[m["name"]])})
        if m := re.fullmatch(rf"/v2/{_NAME}/referrers/(?P<digest>[^/]+)", r.path):
            if m["name"] not in self.tags:
                return _error(404, "NAME_UNKNOWN")
            index = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": self.referrers.get((m["name"], m["digest"]), []),
            }
            return Reply(
                200,
                json.dumps(index).encode(),
                {"Content-Type": "application/vnd.oci.image.index.v1+json"},
            )
        return _error(404, "NOT_FOUND")

    def _manifest(self, r: Request, name: str, ref: str) -> Reply:
        if r.method == "PUT":
            digest = _sha(r.body)
            media_type = r.header("content-type") or ""
            self.manifests[(name, digest)] = (r.body, media_type)
            self.tags.setdefault(name, {})
            if ":" not in ref:
                self.tags[name][ref] = digest
            headers = {
                "Docker-Content-Digest": digest,
                "Location": f"/v2/{name}/manifests/{digest}",
            }
            body = json.loads(r.body)
            subject = body.get("subject")
            if isinstance(subject, dict):
                entry = {"mediaType": media_type, "digest": digest, "size": len(r.body)}
                kind = body.get("artifactType") or (body.get("config") or {}).get("mediaType")
                if kind:
                    entry["artifactType"] = kind
                if body.get("annotations"):
                    entry["annotations"] = body["annotations"]
                self.referrers.setdefault((name, subject["digest"]), []).append(entry)
                headers["OCI-Subject"] = subject["digest"]
            return Reply(201, b"", headers)
        if name not in self.tags:
            return _error(404, "NAME_UNKNOWN")
        digest = ref if ":" in ref else self.tags[name].get(ref)
        found = self.manifests.get((name, digest or ""))
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN")
        data, media_type = found
        return Reply(200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    def _upload(self, r: Request, name: str, upload: str) -> Reply:
        if r.method == "POST":
            token = uuid.uuid4().hex
            self.uploads[token] = name
            self.tags.setdefault(name, {})
            return Reply(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{token}"})
        if r.method == "PUT":
            digest = r.param("digest") or ""
            if _sha(r.body) != digest:
                return _error(400, "DIGEST_INVALID")
            self.blobs[digest] = r.body
            return Reply(
                201,
                b"",
                {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/blobs/{digest}"},
            )
        return _error(405, "UNSUPPORTED")
