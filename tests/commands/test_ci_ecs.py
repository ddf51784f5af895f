"""`flowship ci` end to end with every real part: a git repository, Docker and a
registry, moto's ECR/ECS/IAM/EC2 in server mode, the session's Prefect server,
a local GitHub API and, for runs after a deploy, a real process worker.

ECR in moto answers the API (repository, credentials, "is this tag there");
the bytes go to the local registry named by `registry`. After each run the
test copies what was pushed into moto's ECR (`mirror_to_ecr`), as ECR's own
storage would hold it, with the digest the push produced.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import boto3
import pytest

from flowship.cli import main
from flowship.actions.report import md
from flowship.scope import Scope
from flowship.ecs.taskdef import family_name
from testing.ci import REPO_NAME, ZERO, CiRunner, dispatch_payload, mirror_to_ecr, pr_payload, push_payload
from testing.deployments import FLOW, read_back
from testing.ecs import ML_TEMPLATE, REGION, ci_pyproject, make_account, unique
from testing.git import cpu_flow, seed_flow
from testing.github_server import GitHubServer
from testing.servers import BIN

pytestmark = pytest.mark.integration



def ecs():
    return boto3.client("ecs", region_name=REGION)


def active(family: str) -> list[str]:
    return ecs().list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


def definition(arn: str) -> dict:
    return ecs().describe_task_definition(taskDefinition=arn)["taskDefinition"]


@pytest.fixture
def github():
    with GitHubServer() as server:
        server.add_repo(REPO_NAME)
        yield server


@pytest.mark.slow
def test_ci_on_ecs_builds_registers_deploys_converges_and_cleans_up(
    repo, tmp_path, aws, prefect_api, local_registry, python_image, github, capsys
):
    project, pool = unique("fs"), unique("ecs-pool")
    suffix = uuid.uuid4().hex[:6]
    gpu_fn, cpu_fn = f"train_{suffix}", f"etl_{suffix}"
    gpu, cpu = gpu_fn.replace("_", "-"), cpu_fn.replace("_", "-")
    gpu_file, cpu_file = f"flows/{gpu_fn}.py", f"flows/{cpu_fn}.py"
    account = make_account()
    settings = ci_pyproject(account, project=project, pool=pool, python_image=python_image,
                            registry_host=local_registry.host)
    first = repo.commit({
        "pyproject.toml": settings,
        ".gitignore": ".flowship/\n",
        "docker/ml.Dockerfile.j2": ML_TEMPLATE,
        gpu_file: seed_flow(gpu_fn),
        cpu_file: cpu_flow(cpu_fn),
    }, message="seed")
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws}
    # ECR repository, log group, cluster, the ECS work pool; the roles and network were made by hand.
    assert main(["--root", str(repo.path), "bootstrap", "--no-stack"], env=env) == 0, capsys.readouterr().err
    capsys.readouterr()
    token = f"ghs_{uuid.uuid4().hex}"
    github.add_token(token)
    ci = CiRunner(repo.path, tmp_path, env | {"FLOWSHIP_TARGET": "ecs", "GITHUB_TOKEN": token}, github)
    ecr = boto3.client("ecr", region_name=REGION)
    main_scope = Scope.main()
    families = {n: family_name(project, n, main_scope) for n in (gpu, cpu)}

    def deployments() -> dict[str, dict]:
        return read_back(prefect_api, [gpu, cpu])

    # -- 1. the first push to main: both families built, both flows deployed -------
    step = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=first), capsys)
    assert step.code == 0, step.log
    assert step.deployments == {f"{gpu}/main": "created", f"{cpu}/main": "created"}
    address = f"{local_registry.host}/{project}"
    assert sorted(step.images) == ["base", "ml"]
    assert all(ref.startswith(f"{address}@sha256:") for ref in step.images.values()), step.images
    tags = local_registry.tags(project)
    assert {f"ml-{first}", f"base-{first}"} <= set(tags)
    deps_tags = sorted(t for t in tags if "-deps-" in t)
    assert [t.split("-deps-")[0] for t in deps_tags] == ["base", "ml"]

    live = deployments()
    gpu_vars, cpu_vars = live[f"{gpu}/main"]["job_variables"], live[f"{cpu}/main"]["job_variables"]
    assert live[f"{gpu}/main"]["work_pool_name"] == pool
    gpu_def, cpu_def = definition(gpu_vars["task_definition_arn"]), definition(cpu_vars["task_definition_arn"])
    assert gpu_def["family"] == families[gpu] and cpu_def["family"] == families[cpu]
    # Each task definition runs exactly the code image this run pushed, by digest.
    assert gpu_def["containerDefinitions"][0]["image"] == step.images["ml"]
    assert cpu_def["containerDefinitions"][0]["image"] == step.images["base"]
    assert gpu_def["requiresCompatibilities"] == ["EC2"]
    assert gpu_def["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert gpu_vars["capacity_provider_strategy"] == [{"capacityProvider": account.capacity, "weight": 1, "base": 0}]
    assert cpu_def["requiresCompatibilities"] == ["FARGATE"] and cpu_def["networkMode"] == "awsvpc"
    assert "resourceRequirements" not in cpu_def["containerDefinitions"][0]
    assert cpu_vars["launch_type"] == "FARGATE"
    summary = step.summary
    assert summary.startswith("## flowship: production deploy of main\n")
    assert "### Images" in summary and "### Deployments" in summary and "2 created." in summary
    assert all(md(f"{name}/main") in summary for name in (gpu, cpu))
    assert all(md(ref) in summary for ref in step.images.values())
    # What a run will cost: the placed instance's price, and no runs yet to measure (ecs/costs.py).
    assert "### Cost per run (estimate)" in summary
    assert f"| {md(f'{gpu}/main')} | {md('g5.xlarge')} | $1.006/h | no runs yet | — |" in summary, summary
    assert mirror_to_ecr(local_registry, project, ecr, project)

    # -- 2. a commit touching only the CPU flow: only it redeploys, only `base` code builds
    second = repo.commit({cpu_file: cpu_flow(cpu_fn).replace("rows: int = 10", "rows: int = 11")})
    step = ci("push", push_payload(ref="refs/heads/main", before=first, after=second), capsys)
    assert step.code == 0, step.log
    assert step.deployments == {f"{cpu}/main": "updated"}
    assert list(step.images) == ["base"]
    new_tags = set(local_registry.tags(project)) - set(tags)
    assert new_tags == {f"base-{second}"}  # the deps image was reused, ml not touched
    assert "| base | reused |" in step.summary
    after = deployments()
    assert after[f"{gpu}/main"]["updated"] == live[f"{gpu}/main"]["updated"]
    assert after[f"{gpu}/main"]["job_variables"] == gpu_vars
    assert active(families[gpu]) == [gpu_vars["task_definition_arn"]]
    assert len(active(families[cpu])) == 2  # a new revision for the new image; the old one stays for running tasks
    new_cpu_arn = after[f"{cpu}/main"]["job_variables"]["task_definition_arn"]
    assert new_cpu_arn.endswith(":2") and definition(new_cpu_arn)["containerDefinitions"][0]["image"] == step.images["base"]
    mirror_to_ecr(local_registry, project, ecr, project)

    # -- 3. the same event again: nothing built, registered or written ------------------
    def snapshot() -> tuple:
        return (set(local_registry.tags(project)), {n: active(f) for n, f in families.items()},
                {k: v["updated"] for k, v in deployments().items()})

    before = snapshot()
    step = ci("push", push_payload(ref="refs/heads/main", before=first, after=second), capsys)
    assert step.code == 0, step.log
    assert step.deployments == {} and "No workflow is affected" in step.summary
    assert snapshot() == before

    # A manual run of everything moves the GPU flow to this commit too: its code image
    # is built on the reused deps image; the CPU flow, already there, is unchanged.
    step = ci("workflow_dispatch", dispatch_payload(), capsys, GITHUB_SHA=second)
    assert step.code == 0, step.log
    assert step.deployments == {f"{gpu}/main": "updated", f"{cpu}/main": "unchanged"}
    assert set(local_registry.tags(project)) - before[0] == {f"ml-{second}"}
    assert "| ml | reused |" in step.summary and "| base | reused |" in step.summary
    assert len(active(families[gpu])) == 2
    mirror_to_ecr(local_registry, project, ecr, project)
    # ...and running that dispatch again plans both flows and changes nothing at all.
    before = snapshot()
    step = ci("workflow_dispatch", dispatch_payload(), capsys, GITHUB_SHA=second)
    assert step.code == 0, step.log
    assert step.deployments == {f"{gpu}/main": "unchanged", f"{cpu}/main": "unchanged"}
    assert sorted(step.images) == ["base", "ml"]
    assert "building it" not in step.log and "registered " not in step.log
    assert snapshot() == before
    revisions = before[1]

    # -- 4. a pull request: preview task definitions and deployments ----------------
    branch = "feat/faster-etl"
    preview = Scope.preview(branch, pr=21)
    repo.git("checkout", "-q", "-b", branch)
    head = repo.commit({
        gpu_file: seed_flow(gpu_fn).replace("epochs: int = 3", "epochs: int = 4"),
        cpu_file: cpu_flow(cpu_fn).replace("rows: int = 10", "rows: int = 12"),
    })
    github.add_pull(REPO_NAME, 21, title="Faster ETL", head=branch)
    step = ci("pull_request", pr_payload("opened", number=21, branch=branch, head=head, base=second), capsys)
    assert step.code == 0, step.log
    previews = {f"{gpu}/{preview.name}", f"{cpu}/{preview.name}"}
    assert step.deployments == dict.fromkeys(previews, "created")
    preview_families = {n: family_name(project, n, preview) for n in (gpu, cpu)}
    for name, family in preview_families.items():
        [arn] = active(family)
        described = ecs().describe_task_definition(taskDefinition=arn, include=["TAGS"])
        assert {t["key"]: t["value"] for t in described["tags"]}["flowship:scope"] == "preview"
        assert deployments()[f"{name}/{preview.name}"]["job_variables"]["task_definition_arn"] == arn
    assert definition(active(preview_families[gpu])[0])["containerDefinitions"][0]["image"] == step.images["ml"]
    [comment] = github.comments(REPO_NAME, 21)
    assert f"flowship run {gpu} --scope {branch}" in comment.body

    # -- 5. closed: the preview's families are deregistered, main's stay ACTIVE -------
    step = ci("pull_request", pr_payload("closed", number=21, branch=branch, head=head, base=second), capsys)
    assert step.code == 0, step.log
    assert step.deployments == dict.fromkeys(previews, "deleted")
    assert all(active(f) == [] for f in preview_families.values())
    assert {n: active(f) for n, f in families.items()} == revisions
    assert set(deployments()) == {f"{gpu}/main", f"{cpu}/main"}


# -- runs after a deploy -----------------------------------------------------------
@pytest.mark.slow
def test_dispatch_with_run_and_wait_reports_the_run_and_fails_on_a_failed_run(repo, tmp_path, prefect_api, capsys):
    name = f"double-{uuid.uuid4().hex[:8]}"
    function = name.replace("-", "_")
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    flow = FLOW.format(name=name, function=function,
                       declaration="machine=AwsEcsMachine(cpu_value=256, memory_value=512)")
    head = repo.commit({
        "pyproject.toml": f'[tool.flowship]\nproject = "{unique("p")}"\n[tool.flowship.pools]\nlocal = "{pool}"\n',
        ".gitignore": ".flowship/\n",
        f"flows/{function}.py": flow,
    })
    ci = CiRunner(repo.path, tmp_path, {"PREFECT_API_URL": prefect_api, "FLOWSHIP_TARGET": "local",
                                        "FLOWSHIP_PREFECT_UI_URL": "http://prefect-ui.localhost"})
    # The deploy creates the process pool; a real worker on it runs what ci starts.
    log = tmp_path / "worker.log"
    worker_env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_WORKER_QUERY_SECONDS": "1",
                               "PREFECT_HOME": str(tmp_path / "prefect-home")}
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
        env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        step = ci("workflow_dispatch", dispatch_payload(run="true", wait="true"), capsys, GITHUB_SHA=head)
        assert step.code == 0, step.log + log.read_text()[-3000:]
        assert step.deployments == {f"{name}/main": "created"}
        assert "::group::Runs" in step.log and "started " in step.log
        assert "### Runs" in step.summary and "| Completed |" in step.summary
        assert "http://prefect-ui.localhost/runs/flow-run/" in step.summary
        assert "doubling 1 (a)" in log.read_text()  # the worker ran the flow at its defaults

        # A commit whose flow fails at its defaults, run through the action's `run`
        # input (FLOWSHIP_RUN), which waits: the run fails, and so does the step.
        bad = repo.commit({f"flows/{function}.py": flow.replace("x: int = 1", "x: int = -1")})
        step = ci("workflow_dispatch", dispatch_payload(), capsys, GITHUB_SHA=bad, FLOWSHIP_RUN="true")
        assert step.code == 1, step.log
        assert step.deployments == {f"{name}/main": "updated"}
        assert "| Failed |" in step.summary
        # The summary says why the step failed: the run's final state and its message.
        assert "ended Failed" in step.log
        assert "ended Failed\\: " in step.summary and "x must not be negative" in step.summary
    finally:
        worker.terminate()
        worker.wait(30)
