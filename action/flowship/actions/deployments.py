"""GitHub Deployments: each deploy scope is a GitHub environment.

`flowship/main` for production, `flowship/preview-<slug>` for a pull
request's preview. A deploy creates a GitHub deployment of the head commit
with the status `in_progress`, then `success` or `failure` with the Prefect UI
as the environment's URL, so the pull request shows "View deployment"; closing
the pull request marks the preview's deployments `inactive`.

All of it is a courtesy on top of the summary and the comment: the token
needs `deployments: write`, and without it (a 403, a fork's read-only token)
flowship says so once and makes no further call. No failure here fails a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowship import console
from flowship.actions.github import Context, github_client
from flowship.actions.report import Report
from flowship.config import Config
from flowship.redact import redact
from flowship.scope import Scope

_NO_PERMISSION = ("GitHub refused to record a deployment ({status}); give the job `deployments: write` "
                  "for the pull request's \"View deployment\" link. The deploy itself is unaffected.")


def environment(scope: Scope) -> str:
    return "flowship/main" if scope.is_main else f"flowship/preview-{scope.slug}"


@dataclass
class Tracker:
    """One GitHub deployment in progress; `deployment` is None when GitHub said no."""

    deployment: Any = None
    gh: Any = None

    def finish(self, ok: bool, *, environment_url: str | None, log_url: str | None) -> None:
        """Its final status, then the connection closes."""
        if self.deployment is None:
            return
        state = "success" if ok else "failure"
        try:
            _status(self.deployment, state, environment_url, log_url,
                    "deployed" if ok else "some flows did not deploy; see the run")
        except Exception as exc:  # the report is what counts; say why and go on
            console.warning(_failed(exc, f"mark the deployment {state}"))
        finally:
            self.close()

    def finish_for(self, report: Report) -> None:
        """The final status of a `flowship ci` run: failure if anything failed."""
        failed = any(d.status == "failed" for d in report.deployments) or any(
            n.startswith("Failed: ") for n in report.notes)
        self.finish(not failed, environment_url=environment_url(report), log_url=report.run_url)

    def close(self) -> None:
        if self.gh is not None:
            self.gh.close()
            self.gh = None


def environment_url(report: Report) -> str | None:
    """The Prefect UI: the deployment's page when there is one, else the deployments list."""
    live = [d.url for d in report.deployments if d.url and d.status in ("created", "updated", "unchanged")]
    if len(live) == 1:
        return live[0]
    return f"{report.prefect_ui_url.rstrip('/')}/deployments" if report.prefect_ui_url else None


def start_for(config: Config, repository: str | None, scope: Scope, sha: str) -> Tracker:
    """`start` with the run's GitHub context."""
    ctx = Context.from_env(config.env)
    return start(api_url=ctx.api_url, token=config.env.github_token, repository=repository, scope=scope, sha=sha,
                 log_url=ctx.run_url)


def deactivate_for(config: Config, repository: str | None, scope: Scope) -> int:
    """`deactivate` with the run's GitHub context."""
    done = deactivate(api_url=Context.from_env(config.env).api_url, token=config.env.github_token,
                      repository=repository, scope=scope)
    if done:
        console.info(f"marked {done} GitHub deployment(s) of {environment(scope)} inactive")
    return done


def start(*, api_url: str, token: str | None, repository: str | None, scope: Scope, sha: str,
          environment_url: str | None = None, log_url: str | None = None) -> Tracker:
    """A GitHub deployment of `sha` to the scope's environment, `in_progress`."""
    if not token or not repository:
        return Tracker()
    gh = _github(api_url, token)
    try:
        repo = gh.get_repo(repository)
        deployment = repo.create_deployment(
            ref=sha, environment=environment(scope), auto_merge=False, required_contexts=[],
            description=redact(f"flowship {'production' if scope.is_main else 'preview of ' + scope.branch}")[:140],
            transient_environment=not scope.is_main, production_environment=scope.is_main,
        )
        _status(deployment, "in_progress", environment_url, log_url, "deploying")
        return Tracker(deployment, gh)
    except Exception as exc:
        console.warning(_failed(exc, "record the deployment"))
        gh.close()
        return Tracker()


def deactivate(*, api_url: str, token: str | None, repository: str | None, scope: Scope) -> int:
    """Mark every deployment of the preview's environment `inactive`; how many were."""
    if not token or not repository or scope.is_main:
        return 0
    gh = _github(api_url, token)
    done = 0
    try:
        repo = gh.get_repo(repository)
        for deployment in repo.get_deployments(environment=environment(scope)):
            _status(deployment, "inactive", None, None, "the pull request closed; its preview is removed")
            done += 1
    except Exception as exc:
        console.warning(_failed(exc, "mark the preview's deployments inactive"))
    finally:
        gh.close()
    return done


def _github(api_url: str, token: str) -> Any:
    return github_client(api_url, token, retry=None)


def _status(deployment: Any, state: str, environment_url: str | None, log_url: str | None, description: str) -> None:
    extra = {k: v for k, v in (("environment_url", environment_url), ("target_url", log_url)) if v}
    # A new success hides the previous ones of the same environment in the pull request.
    deployment.create_status(state, description=description, auto_inactive=True, **extra)


def _failed(exc: Exception, what: str) -> str:
    from github import GithubException

    if isinstance(exc, GithubException):
        if exc.status in (401, 403, 404):
            return _NO_PERMISSION.format(status=exc.status)
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"the GitHub API failed to {what}: {exc.status} {message or ''}".rstrip() + "."
    return f"the GitHub API answered unexpectedly while trying to {what} ({type(exc).__name__})."
