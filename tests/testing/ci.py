"""Driving `flowship ci` in-process: GitHub's webhook payloads, the files a step
gets (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY), and a registry that plays ECR's storage.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowship.cli import main
from testing.docker import LocalRegistry
from testing.github_server import GitHubServer, parse_outputs

# Real webhook payloads (octokit/webhooks examples, MIT; see the folder's README), adjusted per test.
PAYLOADS = Path(__file__).parent / "github-payloads"
REPO_NAME = "octo/flows"
FORK_NAME = "mallory/flows"
ZERO = "0" * 40


def payload(name: str) -> dict[str, Any]:
    data = json.loads((PAYLOADS / f"{name}.json").read_text())
    data["repository"]["full_name"] = REPO_NAME
    data["repository"]["default_branch"] = "main"
    return data


def push_payload(*, before: str, after: str, ref: str = "refs/heads/main", forced: bool = False) -> dict[str, Any]:
    data = payload("push.with-new-branch")
    data.update(ref=ref, before=before, after=after, created=before == ZERO, deleted=after == ZERO, forced=forced)
    return data


def pr_payload(action: str, *, number: int, branch: str, head: str, base: str, title: str = "A change",
               merged: bool = False, fork: bool = False, labels: tuple[str, ...] = (),
               label: str | None = None) -> dict[str, Any]:
    """A pull request event; `labels` are the pull request's, `label` the one a `labeled` event added
    (GitHub sends it as `payload.label`, the pull request already listing it)."""
    variant = {"ready_for_review": "opened", "labeled": "synchronize"}.get(action, action)
    data = payload(f"pull_request.{variant}")
    data["action"] = action
    names = (*labels, label) if label else labels
    data["pull_request"]["labels"] = [{"id": 1000 + i, "name": n, "color": "ededed", "default": False}
                                      for i, n in enumerate(names)]
    if label:
        data["label"] = data["pull_request"]["labels"][-1]
    data["number"] = number
    pr = data["pull_request"]
    pr.update(number=number, title=title, merged=merged, state="closed" if action == "closed" else "open")
    head_repo = FORK_NAME if fork else REPO_NAME
    pr["head"].update(ref=branch, sha=head, label=f"{head_repo.split('/')[0]}:{branch}")
    pr["head"]["repo"]["full_name"] = head_repo
    pr["base"].update(ref="main", sha=base)
    pr["base"]["repo"]["full_name"] = REPO_NAME
    return data


def dispatch_payload(**inputs: str) -> dict[str, Any]:
    return payload("workflow_dispatch") | {"ref": "refs/heads/main", "inputs": inputs}


@dataclass
class Step:
    """What one `flowship ci` run left: exit status, log, step outputs and summary."""

    code: int
    log: str
    outputs: dict[str, str]
    summary: str

    @property
    def deployments(self) -> dict[str, str]:
        return {d["deployment"]: d["status"] for d in json.loads(self.outputs.get("deployments") or "[]")}

    @property
    def images(self) -> dict[str, str]:
        return json.loads(self.outputs.get("images") or "{}")


@dataclass
class CiRunner:
    """Runs `flowship ci` on `root` for an event, with the environment of an Actions step."""

    root: Path
    tmp: Path
    env: dict[str, str]  # PREFECT_API_URL, FLOWSHIP_TARGET, AWS_ENDPOINT_URL, ...
    github: GitHubServer | None = None
    runs: int = 0

    def __call__(self, event: str, data: dict[str, Any], capsys: Any, **extra: str) -> Step:
        self.runs += 1
        path = self.tmp / f"event-{self.runs}.json"
        path.write_text(json.dumps(data))
        output, summary = self.tmp / f"output-{self.runs}", self.tmp / f"summary-{self.runs}.md"
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_REPOSITORY": REPO_NAME,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": str(4200 + self.runs),
            "GITHUB_SHA": data.get("after") or "",
            "GITHUB_REF": data.get("ref") or "refs/heads/main",
        }
        if self.github is not None:
            env["GITHUB_API_URL"] = self.github.url
        code = main(["--root", str(self.root), "ci"], env=env | self.env | extra)
        return Step(
            code, capsys.readouterr().err,
            parse_outputs(output.read_text() if output.exists() else ""),
            summary.read_text() if summary.exists() else "",
        )


def mirror_to_ecr(registry: LocalRegistry, repository: str, ecr: Any, ecr_repository: str) -> list[str]:
    """Play ECR's storage: every tag pushed to the local registry becomes visible to
    ECR's API (moto), with the digest the push produced; the tags it added."""
    from flowship.images.registry import MANIFEST_TYPES

    known = {i.get("imageTag") for i in ecr.list_images(repositoryName=ecr_repository)["imageIds"]}
    added = []
    for tag in registry.tags(repository):
        if tag in known:
            continue
        request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}",
                                         headers={"Accept": MANIFEST_TYPES})
        with urllib.request.urlopen(request, timeout=10) as resp:
            manifest, media_type = resp.read(), resp.headers["Content-Type"]
            digest = resp.headers["Docker-Content-Digest"]
        ecr.put_image(repositoryName=ecr_repository, imageTag=tag, imageManifest=manifest.decode(),
                      imageManifestMediaType=media_type, imageDigest=digest)
        added.append(tag)
    return added
