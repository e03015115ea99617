"""A local OIDC issuer and GitHub Actions' token endpoint, for keyless-signing tests.

The issuer publishes its JWKS (``/.well-known/jwks``, named by
``/.well-known/openid-configuration``) and mints RS256 JWTs with the claim
shapes GitHub Actions and GitLab CI give a job. The local Fulcio verifies
them against that JWKS, so a token this issuer did not sign is refused.

GitHub's endpoint is served the way the runner serves it (actions/toolkit
oidc-utils.ts): ``GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=sigstore`` with
``Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>``, answering
``{"value": JWT}``. ``requests`` records each call (never the token).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def github_claims(repo: str = "acme/payments", workflow: str = "release.yml") -> dict[str, Any]:
    """The claims of a GitHub Actions token for a push to main (docs.github.com, OIDC)."""
    owner = repo.split("/")[0]
    ref = "refs/heads/main"
    return {
        "sub": f"repo:{repo}:ref:{ref}",
        "repository": repo,
        "repository_owner": owner,
        "repository_id": "4242",
        "repository_owner_id": "42",
        "repository_visibility": "private",
        "ref": ref,
        "ref_type": "branch",
        "sha": "a" * 40,
        "workflow": "release",
        "workflow_ref": f"{repo}/.github/workflows/{workflow}@{ref}",
        "workflow_sha": "a" * 40,
        "job_workflow_ref": f"{repo}/.github/workflows/{workflow}@{ref}",
        "job_workflow_sha": "a" * 40,
        "event_name": "push",
        "runner_environment": "github-hosted",
        "run_id": "1001",
        "run_attempt": "1",
    }


def gitlab_claims(project: str = "acme/payments") -> dict[str, Any]:
    """The claims of a GitLab CI ``id_tokens:`` entry for a pipeline on main."""
    return {
        "sub": f"project_path:{project}:ref_type:branch:ref:main",
        "namespace_path": project.split("/")[0],
        "project_path": project,
        "pipeline_source": "push",
        "ref": "main",
        "ref_type": "branch",
        "ci_config_ref_uri": f"gitlab.com/{project}//.gitlab-ci.yml@refs/heads/main",
        "runner_environment": "gitlab-hosted",
    }


@dataclass
class OIDCIssuer:
    """Threaded HTTP server: JWKS, discovery and the GitHub runner's token endpoint."""

    server: ThreadingHTTPServer
    key: rsa.RSAPrivateKey
    request_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    github: dict[str, Any] = field(default_factory=github_claims)
    """The claims the GitHub endpoint puts in the tokens it hands out."""
    requests: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks"

    def runner_env(self) -> dict[str, str]:
        """What the runner sets in a job with ``permissions: id-token: write``."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/_apis/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def token(
        self,
        claims: dict[str, Any],
        *,
        issuer: str = GITHUB_ISSUER,
        audience: str = "sigstore",
        lifetime: int = 300,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time())
        body = {"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime}
        return jwt.encode(
            {**body, **claims}, key or self.key, algorithm="RS256", headers={"kid": "local"}
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start() -> OIDCIssuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    holder: list[OIDCIssuer] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            issuer = holder[0]
            url = urlsplit(self.path)
            status, doc = 404, {"message": "not found"}
            if url.path == "/.well-known/jwks":
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                status, doc = 200, {"keys": [{**jwk, "kid": "local", "alg": "RS256", "use": "sig"}]}
            elif url.path == "/.well-known/openid-configuration":
                status, doc = 200, {"issuer": issuer.url, "jwks_uri": issuer.jwks_url}
            elif url.path == "/_apis/token":
                audience = parse_qs(url.query).get("audience", [""])[0]
                if self.headers.get("Authorization") != f"bearer {issuer.request_token}":
                    status, doc = 401, {"message": "bad request token"}
                else:
                    status = 200
                    doc = {"value": issuer.token(issuer.github, audience=audience)}
                issuer.requests.append((url.path, status))
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    issuer = OIDCIssuer(server, key)
    holder.append(issuer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return issuer
