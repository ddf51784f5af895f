"""What a user sees when things go wrong, and that the next run puts it right.

A Prefect API that fails halfway through a deploy, a registry that fails
halfway through a build (both through `testing.faults.FaultProxy`, a real
proxy in front of the real servers), a broken flow file and an invalid
machine next to a good flow, a malformed event. In each: the failure is one
sentence at its file:line, the other flows still deploy, the exit status
says what kind of failure it was, and a rerun converges.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from flowship.cli import main
from flowship.config import load_config
from testing.faults import FaultProxy
from testing.git import Repo
from testing.ci import ZERO, push_payload
from testing.deployments import read_back, recorded as recorded_commit
from testing.github_server import parse_outputs

DEPLOYMENT_POST = r"/api/deployments/"

# A flow of the family `family` that imports the shared helper, so a helper change affects it.
FLOW = '''
from prefect import flow
from flowship import AwsEcsMachine, Workflow

from shared.helpers import ROWS

workflow = Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512, image={family!r}))


@flow(name="{name}")
def main(rows: int = ROWS) -> int:
    return rows
'''


class Ci:
    """`flowship ci` for push events on one repository, with its flows named uniquely on the shared server."""

    def __init__(self, repo: Repo, tmp: Path, api: str, **env: str):
        self.repo, self.tmp, self.api, self.extra = repo, tmp, api, env
        self.suffix = uuid.uuid4().hex[:6]
        self.runs = 0

    def name(self, letter: str) -> str:
        return f"{letter}-{self.suffix}"

    def pyproject(self, extra: str = "") -> str:
        return f'[tool.flowship]\nflows = "flows"\nproject = "p{self.suffix}"\n' \
               f'[tool.flowship.pools]\nlocal = "pool-{self.suffix}"\n' + extra

    def seed(self, letters: str, family: str = "base", files: dict[str, str] | None = None) -> str:
        flows = {f"flows/{x}.py": FLOW.format(name=self.name(x), family=family) for x in letters}
        return self.repo.commit({
            "pyproject.toml": self.pyproject(), ".gitignore": ".flowship/\n", "README.md": "hello\n",
            "shared/__init__.py": "", "shared/helpers.py": "ROWS = 10\n",
        } | flows | (files or {}), message="seed")

    def __call__(self, event: str, data: dict | str, **env: str) -> tuple[int, str]:
        self.runs += 1
        path = self.tmp / f"event-{self.runs}.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        self.output = self.tmp / f"output-{self.runs}"
        self.summary = self.tmp / f"summary-{self.runs}.md"
        full = {
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path),
            "GITHUB_OUTPUT": str(self.output), "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_REPOSITORY": "octo/flows", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "7",
            "GITHUB_SHA": self.repo.head(), "GITHUB_REF": "refs/heads/main",
            "PREFECT_API_URL": self.api, "FLOWSHIP_TARGET": "local",
        } | self.extra | env
        code = main(["--root", str(self.repo.path), "ci"], env=full)
        return code, self.capsys.readouterr().err

    def push(self, before: str, after: str, **env: str) -> tuple[int, str]:
        return self("push", push_payload(before=before, after=after), **env)

    def deployments(self) -> dict[str, str]:
        outputs = parse_outputs(self.output.read_text() if self.output.exists() else "")
        return {d["deployment"]: d["status"] for d in json.loads(outputs.get("deployments") or "[]")}


def stored(api: str, names: list[str]) -> dict[str, str]:
    """`flow/deployment` -> the commit it runs, read from the real server (not through the proxy)."""
    return {name: d["version"] for name, d in read_back(api, names).items()}


def recorded(api: str, ci: Ci) -> str | None:
    return recorded_commit(api, f"p{ci.suffix}")




@pytest.fixture
def ci(repo, tmp_path, prefect_proxy, capsys) -> Ci:
    ci = Ci(repo, tmp_path, prefect_proxy.url + "/api")
    ci.capsys = capsys
    return ci


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("::error")]


# -- Prefect fails halfway -----------------------------------------------------------
@pytest.mark.integration
def test_prefect_failing_halfway_fails_one_flow_and_the_next_runs_converge(ci, prefect_proxy, prefect_server):
    api = prefect_server.url
    names = [ci.name(x) for x in "abcd"]
    seed = ci.seed("abcd")
    # c's write gets a 500. Picked by its body, not by count: a write the server answered 503
    # (SQLite busy) is retried by the client and would shift any count.
    prefect_proxy.fail("POST", DEPLOYMENT_POST, body=r"flows/c\.py")

    code, err = ci.push(ZERO, seed)
    assert code == 1, err
    assert ci.deployments() == {f"{names[0]}/main": "created", f"{names[1]}/main": "created",
                                f"{names[2]}/main": "failed", f"{names[3]}/main": "created"}
    # One sentence at the flow's declaration, no traceback.
    [line] = [e for e in error_lines(err) if names[2] in e]
    assert line == (f"::error file=flows/c.py,line=6,title=flowship deploy::{names[2]}/main: Prefect answered 500 to "
                    "POST /api/deployments/: injected by the test's fault proxy. The Prefect server failed; see its logs.")
    assert "Traceback" not in err
    assert "failed" in ci.summary.read_text()
    assert stored(api, names) == {f"{n}/main": seed for n in names if n != names[2]}
    assert recorded(api, ci) is None  # a partly failed deploy is not "deployed"

    # The same event again, Prefect healthy: the missing one is created, the others are not written.
    prefect_proxy.heal()
    prefect_proxy.clear_log()
    code, err = ci.push(ZERO, seed)
    assert code == 0, err
    assert ci.deployments() == {f"{n}/main": "unchanged" for n in names} | {f"{names[2]}/main": "created"}
    assert len(prefect_proxy.seen("POST", DEPLOYMENT_POST)) == 1
    assert stored(api, names) == {f"{n}/main": seed for n in names}
    assert recorded(api, ci) == seed

    # A commit that changes what every flow imports, and Prefect fails the second write:
    # the head is not recorded, so the next push, touching only the README, still
    # plans from `seed` and brings the failed flow to its commit.
    change = ci.repo.commit({"shared/helpers.py": "ROWS = 11\n"})
    prefect_proxy.fail("POST", DEPLOYMENT_POST, body=r"flows/b\.py")
    code, err = ci.push(seed, change)
    assert code == 1, err
    assert ci.deployments()[f"{names[1]}/main"] == "failed"
    assert recorded(api, ci) == seed
    prefect_proxy.heal()
    later = ci.repo.commit({"README.md": "unrelated\n"})
    code, err = ci.push(change, later)
    assert code == 0, err
    assert set(ci.deployments()) == {f"{n}/main" for n in names}
    assert stored(api, names) == {f"{n}/main": later for n in names}
    assert recorded(api, ci) == later


@pytest.mark.integration
def test_a_first_deploy_that_failed_is_completed_by_the_next_unrelated_push(ci, prefect_proxy, prefect_server):
    api = prefect_server.url
    names = [ci.name(x) for x in "ab"]
    seed = ci.seed("ab")
    # The write is made, then the answer is lost: the client cannot know it happened.
    prefect_proxy.fail("POST", DEPLOYMENT_POST, body=r"flows/b\.py", forward=True, status=500)
    prefect_proxy.fail("POST", DEPLOYMENT_POST, body=r"flows/a\.py", status=500)  # and a's is refused
    code, err = ci.push(ZERO, seed)
    assert code == 1, err
    assert set(ci.deployments().values()) == {"failed"}
    assert stored(api, names) == {f"{names[1]}/main": seed}  # the forwarded write landed
    assert recorded(api, ci) is None

    # Nothing was ever recorded for main, so the push's `before` proves nothing: plan everything.
    prefect_proxy.heal()
    later = ci.repo.commit({"README.md": "unrelated\n"})
    code, err = ci.push(seed, later)
    assert code == 0, err
    assert ci.deployments() == {f"{names[0]}/main": "created", f"{names[1]}/main": "updated"}
    assert stored(api, names) == {f"{n}/main": later for n in names}
    assert recorded(api, ci) == later


@pytest.mark.integration
def test_a_dropped_connection_is_retried_and_refused_writes_fail_each_flow(ci, prefect_proxy, prefect_server):
    seed = ci.seed("ab")
    # One dropped connection: Prefect's client retries it, the deploy succeeds.
    prefect_proxy.fail("POST", DEPLOYMENT_POST, nth=1, drop=True)
    code, err = ci.push(ZERO, seed)
    assert code == 0, err
    assert set(ci.deployments().values()) == {"created"}
    # A 503 is SQLite busy (the deploy lock writes too) and retried by the client: not a failure.
    assert [s.status for s in prefect_proxy.seen("POST", DEPLOYMENT_POST) if s.status != 503] == [None, 201, 201]

    # Prefect refuses every deployment write: each flow fails, exit 1, nothing recorded.
    prefect_proxy.heal()
    change = ci.repo.commit({"shared/helpers.py": "ROWS = 12\n"})
    prefect_proxy.fail("POST", DEPLOYMENT_POST, nth=1, times=0, status=500)
    code, err = ci.push(seed, change)
    assert code == 1, err
    assert set(ci.deployments().values()) == {"failed"}
    assert "Traceback" not in err and recorded(prefect_server.url, ci) == seed


# -- bad input ---------------------------------------------------------------------------
BROKEN = '''
from prefect import flow
from flowship import AwsEcsMachine, Workflow

workflow = Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512))

@flow
def {function}(:
    pass
'''


@pytest.mark.integration
def test_a_broken_file_and_an_invalid_machine_are_annotated_and_the_good_flow_deploys(ci, prefect_server):
    api = prefect_server.url
    good, bad, broken = ci.name("a"), ci.name("bad"), ci.name("broken")
    broken_source = BROKEN.format(function=broken.replace("-", "_"))
    seed = ci.seed("a")
    assert ci.push(ZERO, seed)[0] == 0
    head = ci.repo.commit({
        "shared/helpers.py": "ROWS = 20\n",  # the good flow changes
        "flows/broken.py": broken_source,
        "flows/bad.py": FLOW.format(name=bad, family="base").replace("memory_value=512", "memory_value=1024")
                                                             .replace("cpu_value=256", "cpu_value=2048"),
    })
    code, err = ci.push(seed, head)
    assert code == 2, err  # bad input, though the good flow deployed
    errors = error_lines(err)
    assert any(re.fullmatch(r"::error file=flows/broken\.py,line=7,title=flowship::.*syntax.*", e, flags=re.I)
               for e in errors), errors
    assert any(e.startswith("::error file=flows/bad.py,line=6,title=flowship::")
               and "memory_value=1024 is invalid: with cpu_value=2048 Fargate offers 4096-16384" in e
               for e in errors), errors
    assert ci.deployments() == {f"{good}/main": "updated"}
    assert stored(api, [good, bad, broken]) == {f"{good}/main": head}
    # Fixing both files deploys both; the good one is left alone.
    fixed = ci.repo.commit({
        "flows/broken.py": broken_source.replace("(:", "():"),
        "flows/bad.py": FLOW.format(name=bad, family="base"),
    })
    code, err = ci.push(head, fixed)
    assert code == 0, err
    assert ci.deployments() == {f"{bad}/main": "created", f"{broken}/main": "created"}


@pytest.mark.parametrize(("payload", "says"), [
    ("{not json", r"the event payload \S+ is not JSON \(Expecting property name .* at line 1\)\."),
    (json.dumps({"after": "1" * 40}), r"the event payload has no payload\.ref; is GITHUB_EVENT_PATH the right file\?"),
])
def test_a_malformed_event_is_one_sentence_and_exit_2(ci, payload, says):
    ci.seed("a")
    code, err = ci("push", payload)
    assert code == 2
    [line] = error_lines(err)
    assert re.fullmatch(f"::error::{says}", line), line
    assert "Traceback" not in err


# -- the registry fails halfway ------------------------------------------------------------
# A family template with nothing to run: builds take no time and pushes a few kilobytes.
TINY_TEMPLATE = 'FROM {{ base_image }}\nLABEL dev.flowship.test="{{ family }}"\n'


@pytest.fixture(scope="session")
def tiny_image(docker_daemon) -> str:
    """A one-file image made with `docker import` (nothing can be pulled here)."""
    import io
    import tarfile

    ref = "flowship-test/tiny:1"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("etc/flowship-test")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    docker_daemon.api.import_image_from_data(data.getvalue(), repository="flowship-test/tiny", tag="1")
    return ref


@pytest.mark.integration
def test_a_registry_failing_halfway_fails_one_family_and_a_rerun_builds_only_it(
    repo, tmp_path, capsys, aws, prefect_server, local_registry, tiny_image,
):
    import boto3

    from flowship.ecs.bootstrap import ecs_pool
    from testing.ecs import API_KEY, make_account, pyproject, unique

    with FaultProxy(local_registry.url) as registry:
        ci = Ci(repo, tmp_path, prefect_server.url, FLOWSHIP_TARGET="ecs", AWS_ENDPOINT_URL=aws,
                PREFECT_API_KEY=API_KEY)
        ci.capsys = capsys
        project, account = f"p{ci.suffix}", make_account()
        families = "".join(
            f'[tool.flowship.images.{f}]\ntemplate = "docker/tiny.Dockerfile.j2"\nargs = {{ base_image = "{tiny_image}" }}\n'
            for f in ("alpha", "beta"))
        toml = pyproject(account, project=project, pool=unique("ecs-pool"), extra=families).replace(
            f'ecr-repository = "{project}"', f'registry = "{registry.host}/{project}"')
        alpha, beta = ci.name("a"), ci.name("b")
        seed = ci.repo.commit({
            "pyproject.toml": toml, "docker/tiny.Dockerfile.j2": TINY_TEMPLATE,
            "shared/__init__.py": "", "shared/helpers.py": "ROWS = 10\n",
            "flows/a.py": FLOW.format(name=alpha, family="alpha"), "flows/b.py": FLOW.format(name=beta, family="beta"),
        })
        config = load_config(repo.path, {"PREFECT_API_URL": prefect_server.url, "AWS_ENDPOINT_URL": aws})
        boto3.client("ecs", region_name="us-east-1").create_cluster(clusterName=config.aws.cluster)
        ecs_pool(config, {})

        # Every manifest of the beta family is refused: its layers go up, its images never exist.
        registry.fail("PUT", r"/v2/[^/]+/manifests/beta-.*", times=0)
        code, err = ci.push(ZERO, seed)
        assert code == 1, err
        assert ci.deployments() == {f"{alpha}/main": "created", f"{beta}/main": "failed"}
        [image_error] = [e for e in error_lines(err) if e.startswith("::error title=flowship build::image beta:")]
        assert "pushing" in image_error and "beta-deps-" in image_error and "Traceback" not in err
        [flow_error] = [e for e in error_lines(err) if beta in e and "flowship deploy" in e]
        assert flow_error.startswith("::error file=flows/b.py,line=6,") and "its 'beta' image did not build" in flow_error
        assert recorded(prefect_server.url, ci) is None
        assert all(not t.startswith("beta-") for t in local_registry.tags(project))

        # The registry healthy again, the same event: only beta is built, and only its flow written.
        registry.heal()
        registry.clear_log()
        code, err = ci.push(ZERO, seed)
        assert code == 0, err
        assert ci.deployments() == {f"{alpha}/main": "unchanged", f"{beta}/main": "created"}
        pushed = [s.path.rsplit("/", 1)[1] for s in registry.seen("PUT", r"/v2/[^/]+/manifests/.*")]
        assert len(pushed) == 2 and pushed[0].startswith("beta-deps-") and pushed[1] == f"beta-{seed}", pushed
        assert recorded(prefect_server.url, ci) == seed
