"""A local stand-in for the GitHub REST API, for PyGithub pointed at it with `base_url`.

It answers the endpoints flowship's pull-request comment uses, with the
payload shapes GitHub documents (docs.github.com/rest: repos, pulls, issue
comments), and keeps state so a test can see a comment created once and then
edited, and GitHub Deployments (create, list by environment, statuses, with
GitHub's `auto_inactive`: a new success makes the environment's earlier
successes inactive). Tokens are checked like GitHub does: an unknown token gets 401, a
read-only one (a fork's pull request) gets 403 on writes. A token is either an
Actions installation token (GET /user answers 403, its comments are by
`github-actions[bot]`) or a person's (`login=`: GET /user names them, their
comments are theirs); only a comment's author may edit it. `bad_body` names
routes that answer 200 with a body GitHub never sends, as a broken proxy might.
A token added with `deployments=False` lacks `deployments: write` (403 on
those writes only).
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import parse_qsl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOT = {"login": "github-actions[bot]", "id": 41898282, "node_id": "MDM6Qm90NDE4OTgyODI=", "type": "Bot", "site_admin": False}


@dataclass
class Comment:
    id: int
    repo: str
    number: int
    body: str
    user: dict[str, Any]
    created_at: str
    updated_at: str
    edits: int = 0


@dataclass
class Deployment:
    id: int
    repo: str
    ref: str
    environment: str
    description: str | None
    transient: bool
    production: bool
    created_at: str
    statuses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return self.statuses[-1]["state"] if self.statuses else None


@dataclass
class Request:
    method: str
    path: str
    token: str | None
    body: Any = None


@dataclass
class State:
    tokens: set[str] = field(default_factory=set)
    read_only_tokens: set[str] = field(default_factory=set)
    logins: dict[str, str] = field(default_factory=dict)  # a person's token -> their login
    bad_body: dict[str, bytes] = field(default_factory=dict)  # route name -> a 200 body to send instead
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)  # full name -> {"default_branch"}
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    no_deployments_tokens: set[str] = field(default_factory=set)  # tokens without `deployments: write`
    requests: list[Request] = field(default_factory=list)
    next_id: int = 1000


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubServer:
    """`with GitHubServer() as gh:` serves on a free loopback port; `gh.url` is the API base."""

    def __init__(self) -> None:
        self.state = State()
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.web = "https://github.example"  # html_url host; never fetched
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> GitHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- test setup --------------------------------------------------------
    def add_token(self, token: str, *, read_only: bool = False, login: str | None = None,
                  deployments: bool = True) -> None:
        """`login=None` is an Actions installation token; a login makes it that person's token."""
        (self.state.read_only_tokens if read_only else self.state.tokens).add(token)
        if not deployments:
            self.state.no_deployments_tokens.add(token)
        if login is not None:
            self.state.logins[token] = login

    def author(self, token: str | None) -> dict[str, Any]:
        """The `user` of a comment `token` writes."""
        login = self.state.logins.get(token or "")
        return BOT if login is None else self._user(login)

    def answer_badly(self, route: str, body: bytes = b"<html>Service Unavailable</html>") -> None:
        """Make `route` (a name in _ROUTES, e.g. "list_comments") answer 200 with `body`."""
        assert route in {name for _, _, name in _ROUTES}, route
        self.state.bad_body[route] = body

    def add_repo(self, full_name: str, default_branch: str = "main") -> None:
        self.state.repos[full_name] = {"default_branch": default_branch}

    def add_pull(self, full_name: str, number: int, *, title: str, head: str, base: str = "main", head_repo: str | None = None,
                 state: str = "open") -> None:
        self.state.pulls[(full_name, number)] = {"title": title, "head": head, "base": base, "head_repo": head_repo or full_name,
                                                 "state": state}

    def add_comment(self, full_name: str, number: int, body: str, user: dict[str, Any] | None = None) -> Comment:
        with self.lock:
            comment = Comment(self._id(), full_name, number, body, user or BOT, _now(), _now())
            self.state.comments.append(comment)
            return comment

    def comments(self, full_name: str, number: int) -> list[Comment]:
        return [c for c in self.state.comments if c.repo == full_name and c.number == number]

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id

    # -- payloads (shapes from docs.github.com/rest) -----------------------
    def _user(self, login: str) -> dict[str, Any]:
        return {"login": login, "id": 1, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": False,
                "url": f"{self.url}/users/{login}", "html_url": f"{self.web}/{login}"}

    def repo_json(self, full_name: str) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        return {
            "id": abs(hash(full_name)) % 10**8, "node_id": "R_kgDO", "name": name, "full_name": full_name,
            "private": False, "owner": self._user(owner), "html_url": f"{self.web}/{full_name}",
            "url": f"{self.url}/repos/{full_name}", "fork": full_name not in self.state.repos,
            "default_branch": self.state.repos.get(full_name, {}).get("default_branch", "main"),
            "issues_url": f"{self.url}/repos/{full_name}/issues{{/number}}",
            "pulls_url": f"{self.url}/repos/{full_name}/pulls{{/number}}",
        }

    def pull_json(self, full_name: str, number: int) -> dict[str, Any]:
        pull = self.state.pulls[(full_name, number)]
        api = f"{self.url}/repos/{full_name}"
        return {
            "url": f"{api}/pulls/{number}", "id": number * 7919, "node_id": "PR_kwDO", "number": number,
            "html_url": f"{self.web}/{full_name}/pull/{number}", "issue_url": f"{api}/issues/{number}",
            "comments_url": f"{api}/issues/{number}/comments", "state": pull["state"], "locked": False,
            "title": pull["title"], "user": self._user("octocat"), "body": None, "draft": False, "merged": False,
            "head": {"label": f"{pull['head_repo'].split('/')[0]}:{pull['head']}", "ref": pull["head"], "sha": "0" * 40,
                     "repo": self.repo_json(pull["head_repo"])},
            "base": {"label": f"{full_name.split('/')[0]}:{pull['base']}", "ref": pull["base"], "sha": "0" * 40,
                     "repo": self.repo_json(full_name)},
        }

    def deployment_json(self, d: Deployment) -> dict[str, Any]:
        api = f"{self.url}/repos/{d.repo}"
        return {
            "id": d.id, "node_id": f"DE_{d.id}", "url": f"{api}/deployments/{d.id}", "sha": d.ref, "ref": d.ref,
            "task": "deploy", "payload": {}, "original_environment": d.environment, "environment": d.environment,
            "description": d.description, "creator": BOT, "created_at": d.created_at, "updated_at": d.created_at,
            "statuses_url": f"{api}/deployments/{d.id}/statuses", "repository_url": api,
            "transient_environment": d.transient, "production_environment": d.production,
        }

    def comment_json(self, c: Comment) -> dict[str, Any]:
        api = f"{self.url}/repos/{c.repo}"
        return {
            "id": c.id, "node_id": f"IC_{c.id}", "url": f"{api}/issues/comments/{c.id}",
            "html_url": f"{self.web}/{c.repo}/pull/{c.number}#issuecomment-{c.id}", "body": c.body,
            "user": c.user, "created_at": c.created_at, "updated_at": c.updated_at,
            "issue_url": f"{api}/issues/{c.number}", "author_association": "NONE",
        }


_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("GET", re.compile(r"^/user$"), "get_user"),
    ("GET", re.compile(rf"^{_REPO}$"), "get_repo"),
    ("GET", re.compile(rf"^{_REPO}/pulls/(?P<n>\d+)$"), "get_pull"),
    ("GET", re.compile(rf"^{_REPO}/issues/(?P<n>\d+)/comments$"), "list_comments"),
    ("POST", re.compile(rf"^{_REPO}/issues/(?P<n>\d+)/comments$"), "create_comment"),
    ("PATCH", re.compile(rf"^{_REPO}/issues/comments/(?P<id>\d+)$"), "edit_comment"),
    ("GET", re.compile(rf"^{_REPO}/deployments$"), "list_deployments"),
    ("POST", re.compile(rf"^{_REPO}/deployments$"), "create_deployment"),
    ("POST", re.compile(rf"^{_REPO}/deployments/(?P<id>\d+)/statuses$"), "create_deployment_status"),
]


def _handler(server: GitHubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        token: str | None = None  # the request's token, set before a route runs
        query: dict[str, str] = {}  # the request's query, likewise

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, payload: Any) -> None:
            self._send_raw(status, json.dumps(payload).encode())

        def _send_raw(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)})

        def _dispatch(self) -> None:
            path, _, _query = self.path.partition("?")
            auth = self.headers.get("Authorization", "")
            token = auth.split(" ", 1)[1] if " " in auth else None
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            with server.lock:
                server.state.requests.append(Request(self.command, path, token, body))
                st = server.state
                if token not in st.tokens and token not in st.read_only_tokens:
                    return self._error(401, "Bad credentials")
                for method, pattern, name in _ROUTES:
                    m = pattern.match(path)
                    if m and method == self.command:
                        if method != "GET" and token in st.read_only_tokens:
                            return self._error(403, "Resource not accessible by integration")
                        if name in st.bad_body:
                            return self._send_raw(200, st.bad_body[name])
                        if "deployment" in name and method != "GET" and token in st.no_deployments_tokens:
                            return self._error(403, "Resource not accessible by integration")
                        self.token = token
                        self.query = dict(parse_qsl(_query))
                        return getattr(self, name)(body=body, **m.groupdict())
                return self._error(404, "Not Found")

        do_GET = do_POST = do_PATCH = _dispatch

        def get_user(self, body: Any) -> None:
            login = server.state.logins.get(self.token or "")
            if login is None:  # what GitHub answers an Actions installation token
                return self._error(403, "Resource not accessible by integration")
            self._send(200, server._user(login))

        def get_repo(self, repo: str, body: Any) -> None:
            if repo not in server.state.repos:
                return self._error(404, "Not Found")
            self._send(200, server.repo_json(repo))

        def get_pull(self, repo: str, n: str, body: Any) -> None:
            if (repo, int(n)) not in server.state.pulls:
                return self._error(404, "Not Found")
            self._send(200, server.pull_json(repo, int(n)))

        def list_comments(self, repo: str, n: str, body: Any) -> None:
            self._send(200, [server.comment_json(c) for c in server.comments(repo, int(n))])

        def create_comment(self, repo: str, n: str, body: Any) -> None:
            if (repo, int(n)) not in server.state.pulls:
                return self._error(404, "Not Found")
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                return self._error(422, "Validation Failed")
            comment = Comment(server._id(), repo, int(n), body["body"], server.author(self.token), _now(), _now())
            server.state.comments.append(comment)
            self._send(201, server.comment_json(comment))

        def edit_comment(self, repo: str, id: str, body: Any) -> None:
            comment = next((c for c in server.state.comments if c.id == int(id) and c.repo == repo), None)
            if comment is None:
                return self._error(404, "Not Found")
            if comment.user.get("login") != server.author(self.token)["login"]:
                return self._error(403, "Resource not accessible by integration")
            comment.body = body["body"]
            comment.updated_at = _now()
            comment.edits += 1
            self._send(200, server.comment_json(comment))

        def list_deployments(self, repo: str, body: Any) -> None:
            found = [d for d in server.state.deployments if d.repo == repo and all(
                getattr(d, {"sha": "ref"}.get(k, k), None) == v for k, v in self.query.items()
                if k in ("environment", "ref", "sha"))]
            self._send(200, [server.deployment_json(d) for d in reversed(found)])  # newest first, as GitHub

        def create_deployment(self, repo: str, body: Any) -> None:
            if repo not in server.state.repos:
                return self._error(404, "Not Found")
            if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
                return self._error(422, "Validation Failed")
            environment = body.get("environment", "production")
            deployment = Deployment(server._id(), repo, body["ref"], environment, body.get("description"),
                                    bool(body.get("transient_environment", False)),
                                    bool(body.get("production_environment", environment == "production")), _now())
            server.state.deployments.append(deployment)
            self._send(201, server.deployment_json(deployment))

        def create_deployment_status(self, repo: str, id: str, body: Any) -> None:
            deployment = next((d for d in server.state.deployments if d.id == int(id) and d.repo == repo), None)
            if deployment is None:
                return self._error(404, "Not Found")
            states = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
            if not isinstance(body, dict) or body.get("state") not in states:
                return self._error(422, "Validation Failed")
            status = {"id": server._id(), "state": body["state"], "description": body.get("description", ""),
                      "environment": deployment.environment, "target_url": body.get("target_url", ""),
                      "log_url": body.get("log_url", body.get("target_url", "")),
                      "environment_url": body.get("environment_url", ""), "created_at": _now(),
                      "updated_at": _now(), "creator": BOT, "deployment_url": server.deployment_json(deployment)["url"],
                      "repository_url": f"{server.url}/repos/{repo}"}
            deployment.statuses.append(status)
            if body["state"] == "success" and body.get("auto_inactive", True):
                for other in server.state.deployments:
                    if other is not deployment and other.environment == deployment.environment and other.state == "success":
                        other.statuses.append({**status, "id": server._id(), "state": "inactive"})
            self._send(201, status)

    return Handler


def parse_outputs(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the runner does (name<<DELIM ... DELIM)."""
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines) and lines[i]:
        name, delim = lines[i].split("<<", 1)
        end = lines.index(delim, i + 1)
        out[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    return out
