"""What a person sees of a deployment in the Prefect UI (issue 13, item 5).

A self-hosted server drops `version_info`, so the description carries the
scope, branch, pull request, commit and machine; a tag carries the real
branch name beside the hashed slug; schedules are named by what they do.
Checked on the real server's API, and on the deployment's page as headless
Chromium renders the real Prefect UI (skipped only where Chromium cannot be
had, failing instead under FLOWSHIP_REQUIRE_SERVICES=1, as in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flowship.deploy import LocalTarget, deploy_plan
from flowship.deploy.desired import branch_tag
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Cron, Workflow

from testing.deployments import FlowRepo, counting_client, read_back, uid
from testing.servers import require_or_skip, start_prefect

pytestmark = pytest.mark.integration

BRANCH = "Feature/Faster_ETL"  # a lossy slug: it ends in a hash nobody can search for
SUBJECT = "etl: read the prices twice as fast"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _deploy_preview(flows: FlowRepo) -> tuple[str, str, Scope]:
    name = f"etl-{uid()}"
    flows.write_flow(name, Workflow(machine=AwsEcsMachine(cpu_value=512, memory_value=2048),
                                    schedules=[Cron("0 5 * * *"), 3600], description="Nightly prices."))
    head = flows.repo.commit(message=f"{SUBJECT}\n\nThe body is not shown.")
    scope = Scope.preview(BRANCH, 7)
    result = deploy_plan(flows.config, flows.plan(scope, head, [name]), LocalTarget(flows.config))
    assert result.created == [f"{name}/{scope.slug}"], result.outcomes
    return name, head, scope


def test_the_deployment_says_what_it_is_and_a_rerun_writes_nothing(repo, prefect_api):
    flows = FlowRepo.create(repo, prefect_api)
    name, head, scope = _deploy_preview(flows)
    d = read_back(flows.api, [name])[f"{name}/{scope.slug}"]

    paragraphs = d["description"].split("\n\n")
    assert paragraphs[0] == "Nightly prices."  # the workflow's own words first
    assert paragraphs[1:] == [
        "Scope: preview of Feature\\/Faster\\_ETL, pull request #7: schedules paused",
        "Branch: Feature\\/Faster\\_ETL",
        "Pull request: #7",
        f"Commit: {head[:12]} etl\\: read the prices twice as fast",
        "Machine: CPU, 0.5 vCPU, 2 GiB, default storage, on a process worker",
    ]
    assert scope.slug != BRANCH.lower() and f"branch:{scope.slug}" in d["tags"]
    assert "git-branch:Feature/Faster_ETL" in d["tags"]
    assert sorted((s["slug"], s["active"]) for s in d["schedules"]) == [
        ("cron 0 5 * * * UTC", False), ("every 1 h", False)]

    with counting_client(flows.config) as (client, writes):
        again = deploy_plan(flows.config, flows.plan(scope, head, [name]), LocalTarget(flows.config), client=client)
    assert again.unchanged == [f"{name}/{scope.slug}"] and writes == []
    assert read_back(flows.api, [name])[f"{name}/{scope.slug}"] == d


def test_a_branch_tag_is_one_printable_bounded_line():
    assert branch_tag("feature/x") == "git-branch:feature/x"
    assert branch_tag("refs/heads/a b\tc\nd") == "git-branch:a-b-c-d"
    assert len(branch_tag("x" * 500)) == 120


# -- in a real browser -------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1100",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        require_or_skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    return str(found)


def browse(exe: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # The UI is a single-page app that fetches the deployment after load: the
    # virtual time budget lets its requests finish before the DOM is read.
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                           *extra, url], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    server = start_prefect(tmp_path_factory.mktemp("prefect-ui"), ui=True)
    yield server
    server.stop()


def test_the_deployment_page_reads_in_a_browser(repo, ui_server, monkeypatch, tmp_path):
    exe = chromium()
    monkeypatch.setenv("PREFECT_API_URL", ui_server.url)
    flows = FlowRepo.create(repo, ui_server.url)
    name, head, scope = _deploy_preview(flows)
    deployment = read_back(flows.api, [name])[f"{name}/{scope.slug}"]
    page = f"{ui_server.url.removesuffix('/api')}/deployments/deployment/{deployment['id']}"

    details = browse(exe, page, tmp_path / "profile", "--dump-dom")
    assert details.returncode == 0, details.stderr[-2000:]
    for seen in (name, "git-branch:Feature/Faster_ETL", f"branch:{scope.slug}", "cron 0 5 * * * UTC", "every 1 h"):
        assert seen in details.stdout, (seen, details.stdout[-3000:])

    # The description is the page's own tab, rendered from Markdown: the escapes are gone.
    described = browse(exe, f"{page}?tab=Description", tmp_path / "profile", "--dump-dom")
    assert described.returncode == 0, described.stderr[-2000:]
    for seen in ("Nightly prices.", "Scope: preview of Feature/Faster_ETL, pull request #7: schedules paused",
                 f"Commit: {head[:12]} etl: read the prices twice as fast",
                 "Machine: CPU, 0.5 vCPU, 2 GiB, default storage, on a process worker"):
        assert seen in described.stdout, (seen, described.stdout[-3000:])

    if os.environ.get("FLOWSHIP_SCREENSHOTS") == "1":  # refresh the pictures in docs/ by hand
        for tab, picture in (("Details", "prefect-ui-deployment.png"), ("Description", "prefect-ui-description.png")):
            shot = browse(exe, f"{page}?tab={tab}", tmp_path / f"shot-{tab}", f"--screenshot={DOCS / picture}")
            assert shot.returncode == 0, shot.stderr[-2000:]
