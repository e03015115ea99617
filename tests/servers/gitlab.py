"""A fake GitLab API for commit statuses, over the recorder.

It answers ``POST /api/v4/projects/:id/statuses/:sha`` as GitLab does
(FORMATS.md §9): 201 with the created status; 401 without a token; 403 for
tokens listed in ``forbidden`` (e.g. a ``CI_JOB_TOKEN``, which may not set
statuses); 400 for an unknown state or a description over 255 characters::

    with GitLabServer() as gitlab:
        env["CI_API_V4_URL"] = gitlab.url + "/api/v4"
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import parse_qs

from tests.servers.recorder import Recorder, Reply, Request

STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
STATUS_PATH = r"/api/v4/projects/(?P<project>[^/]+)/statuses/(?P<sha>[0-9a-f]+)"
JSON_HEADERS = {"Content-Type": "application/json"}


class GitLabServer(Recorder):
    """Recorder with GitLab's commit-status endpoint and its validation rules."""

    def __init__(self, *, forbidden: tuple[str, ...] = ()) -> None:
        super().__init__(default=Reply(404, {"message": "404 Not Found"}, JSON_HEADERS))
        self.forbidden = set(forbidden)
        self._ids = itertools.count(100)
        self.route("POST", STATUS_PATH, self._status)

    def statuses(self) -> list[Request]:
        return [
            r for r in self.requests if r.method == "POST" and re.fullmatch(STATUS_PATH, r.path)
        ]

    @staticmethod
    def body(request: Request) -> dict[str, Any]:
        """The parameters, sent as JSON (python-gitlab) or as a form."""
        content_type = request.header("Content-Type") or ""
        if "json" in content_type:
            return dict(request.json())
        return {k: v[0] for k, v in parse_qs(request.text()).items()}

    def _status(self, request: Request) -> Reply:
        token = request.header("PRIVATE-TOKEN") or (
            (request.header("Authorization") or "").removeprefix("Bearer ") or None
        )
        if not token:
            return Reply(401, {"message": "401 Unauthorized"}, JSON_HEADERS)
        if token in self.forbidden:
            return Reply(403, {"message": "403 Forbidden"}, JSON_HEADERS)
        body = self.body(request)
        if body.get("state") not in STATES:
            return Reply(400, {"error": "state does not have a valid value"}, JSON_HEADERS)
        for name in ("description", "target_url", "ref"):
            if len(str(body.get(name) or "")) > 255:
                return Reply(
                    400,
                    {"message": {name: ["is too long (maximum is 255 characters)"]}},
                    JSON_HEADERS,
                )
        match = re.fullmatch(STATUS_PATH, request.path)
        assert match is not None
        created = {
            "id": next(self._ids),
            "sha": match["sha"],
            "ref": body.get("ref"),
            "status": body["state"],
            "name": body.get("name") or body.get("context") or "default",
            "target_url": body.get("target_url"),
            "description": body.get("description"),
            "allow_failure": False,
            "created_at": "2025-01-01T00:00:00.000Z",
        }
        return Reply(201, created, JSON_HEADERS)
