"""Which pull requests are still open: what `flowship prune` asks GitHub about previews."""

from __future__ import annotations

from collections.abc import Iterable

from flowship import console
from flowship.actions.github import github_client


def open_pulls(*, api_url: str, token: str, repository: str, numbers: Iterable[int]) -> set[int] | None:
    """The numbers among `numbers` whose pull request is open; None when GitHub could not say.

    A 404 (a number that never was a pull request here) counts as not open;
    any other failure makes the whole answer unknown, so that an outage never
    reads as "every pull request closed".
    """
    from github import GithubException

    found: set[int] = set()
    try:
        with github_client(api_url, token) as gh:
            repo = gh.get_repo(repository)
            for number in numbers:
                try:
                    if repo.get_pull(number).state == "open":
                        found.add(number)
                except GithubException as exc:
                    if exc.status != 404:
                        raise
    except Exception as exc:  # whatever PyGithub raised: unknown, never "closed"
        console.warning(f"could not ask GitHub which pull requests of {repository} are open "
                        f"({type(exc).__name__}); pull requests are not checked.")
        return None
    return found
