"""A fake GitHub REST API for commit statuses, over the recorder.

It answers ``POST /repos/{owner}/{repo}/statuses/{sha}`` the way api.github.com
does (FORMATS.md §8.1): 201 with the created status; 422 "Validation Failed"
for an unknown state or a description over 140 characters; 401 without a
token; and 403 "Resource not accessible by integration" for tokens listed in
``forbidden`` (a ``GITHUB_TOKEN`` without ``statuses: write``)::

    with GitHubServer() as github:
        env["GITHUB_API_URL"] = github.url
        ...
        [post] = github.statuses()
        post.json() == {"state": "success", ...}
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.servers.recorder import Recorder, Reply, Request

STATES = ("error", "failure", "pending", "success")
STATUS_PATH = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[^/]+)"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class GitHubServer(Recorder):
    """Recorder with GitHub's commit-status endpoint and its validation rules."""

    def __init__(self, *, forbidden: tuple[str, ...] = ()) -> None:
        super().__init__(default=Reply(404, {"message": "Not Found"}, JSON_HEADERS))
        self.forbidden = set(forbidden)
        self._ids = itertools.count(1)
        self.route("POST", STATUS_PATH, self._status)
        self.route("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)", self._repo)

    def statuses(self) -> list[Request]:
        """Every status POST received, in order."""
        return [
            r for r in self.requests if r.method == "POST" and re.fullmatch(STATUS_PATH, r.path)
        ]

    @staticmethod
    def token(request: Request) -> str | None:
        """The token from ``Authorization: token T`` or ``Bearer T``."""
        value = request.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token if scheme.lower() in ("token", "bearer") and token else None

    def _status(self, request: Request) -> Reply:
        token = self.token(request)
        if token is None:
            return Reply(401, {"message": "Requires authentication"}, JSON_HEADERS)
        if token in self.forbidden:
            return Reply(403, {"message": "Resource not accessible by integration"}, JSON_HEADERS)
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"message": "Problems parsing JSON"}, JSON_HEADERS)
        errors = []
        if body.get("state") not in STATES:
            errors.append(
                {
                    "resource": "Status",
                    "field": "state",
                    "code": "custom",
                    "message": "state is not included in the list",
                }
            )
        if len(body.get("description") or "") > 140:
            errors.append(
                {
                    "resource": "Status",
                    "field": "description",
                    "code": "custom",
                    "message": "description is too long (maximum is 140 characters)",
                }
            )
        if errors:
            return Reply(422, {"message": "Validation Failed", "errors": errors}, JSON_HEADERS)
        match = re.fullmatch(STATUS_PATH, request.path)
        assert match is not None
        created: dict[str, Any] = {
            "id": next(self._ids),
            "url": f"{self.url}{request.path}",
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context") or "default",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        }
        return Reply(201, created, JSON_HEADERS)

    def _repo(self, request: Request) -> Reply:
        match = re.fullmatch(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)", request.path)
        assert match is not None
        full_name = f"{match['owner']}/{match['repo']}"
        return Reply(
            200,
            {
                "id": 1,
                "name": match["repo"],
                "full_name": full_name,
                "url": f"{self.url}/repos/{full_name}",
            },
            JSON_HEADERS,
        )
