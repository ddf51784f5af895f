"""Images against a real Docker daemon, a real local registry and moto's ECR API.

The `base` family is built for real from its shipped template, FROM a local
Python image (testing/docker.py: nothing can be pulled here). Each test
pushes to its own repository in the session's registry, so tags never leak
between tests; layers are shared (cross-repository mounts), which keeps the
suite quick after the first push.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

from flowship import console
from flowship.cli import main
from testing.images import Project
from testing.git import cpu_flow
from testing.servers import free_port

pytestmark = pytest.mark.integration

FLOW = '''
from prefect import flow
from flowship import AwsEcsMachine, Workflow

workflow = Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512, image={family!r}))

@flow
def {name}() -> int:
    return 1
'''
# A repository family whose build fails: the failure must stay its own.
BROKEN_TEMPLATE = 'FROM {{ base_image }}\nRUN python -c "raise SystemExit(\'no such wheel\')"\n'


@pytest.fixture
def project(repo, local_registry, python_image) -> Project:
    return Project(repo, local_registry, f"t-{uuid.uuid4().hex[:10]}", python_image)


def test_first_build_pushes_both_images_and_a_rerun_builds_nothing(project, docker_daemon):
    project.seed()
    plan, first = project.build()
    assert first.ok, first.failed
    image = first.images["base"]
    assert first.built == [image.deps_tag, f"base-{plan.head}"]
    assert image.deps_tag == plan.images[0].deps_tag  # the planner's hash is the builder's
    assert project.registry.tags(project.repository) == sorted([image.deps_tag, f"base-{plan.head}"])
    ref = first.refs["base"]
    assert ref.startswith(f"{project.address}@sha256:")

    # The code image runs the flow the way Prefect's worker does: entrypoint from the WORKDIR.
    out = docker_daemon.containers.run(
        ref,
        ["python", "-c",
         "from prefect.flows import load_flow_from_entrypoint as load; import shared.helpers; "
         "print(load('flows/etl.py:etl').name, shared.helpers.ROWS)"],
        remove=True, network_mode="none",
    )
    assert out.decode().split() == ["etl", "10"]

    _, again = project.build()
    assert again.ok and again.built == []
    assert again.refs == first.refs  # the same digests, read back from the registry


def test_a_flow_code_change_builds_only_the_code_image(project):
    seed = project.seed()
    _, first = project.build()
    blobs = project.registry.blobs()

    head = project.repo.commit({"flows/etl.py": cpu_flow("etl") + "\n# tuned\n"})
    plan, second = project.build(base=seed)
    assert [i.rebuild for i in plan.images] == [False]
    assert second.built == [f"base-{head}"]
    assert second.images["base"].deps_tag == first.images["base"].deps_tag
    # One small layer (plus manifest and config) went up, not the dependencies.
    new = {d: n for d, n in project.registry.blobs().items() if d not in blobs}
    assert 0 < sum(new.values()) < 100_000, new


def test_a_requirements_change_rebuilds_the_deps_image(project):
    seed = project.seed()
    _, first = project.build()
    head = project.repo.commit({"requirements.txt": "packaging\nsix\n"})
    plan, second = project.build(base=seed)
    assert [i.rebuild for i in plan.images] == [True]
    image = second.images["base"]
    assert image.deps_tag != first.images["base"].deps_tag
    assert second.built == [image.deps_tag, f"base-{head}"]


def test_two_flows_on_one_family_build_it_once(project):
    project.seed({"flows/report.py": cpu_flow("report")})
    plan, result = project.build()
    assert sorted(w.name for w in plan.workflows) == ["etl", "report"]
    assert result.ok and len(result.built) == 2  # one deps image, one code image
    assert list(result.refs) == ["base"]


def test_a_failed_family_fails_alone_and_the_command_exits_1(project, tmp_path, capsys):
    family = '[tool.flowship.images.broken]\ntemplate = "docker/broken.Dockerfile.j2"\n' \
             f'args = {{ base_image = "{project.python_image}" }}\n'
    project.seed({
        "pyproject.toml": project.pyproject(family),
        "docker/broken.Dockerfile.j2": BROKEN_TEMPLATE,
        "flows/train.py": FLOW.format(name="train", family="broken"),
    })
    output = tmp_path / "images.json"
    code = main(["--root", str(project.repo.path), "build", "--all", "--branch", "main", "--output", str(output)])
    assert code == 1
    written = json.loads(output.read_text())
    assert list(written["images"]) == ["base"] and written["images"]["base"].startswith(project.address + "@sha256:")
    assert list(written["failed"]) == ["broken"] and "no such wheel" in written["failed"]["broken"]
    err = capsys.readouterr().err
    assert "image broken failed; not deployable: train" in err


def test_a_registry_that_cannot_be_checked_fails_the_build(project, docker_daemon):
    project.seed({"pyproject.toml": project.pyproject(registry=f"127.0.0.1:{free_port()}/nowhere")})
    plan, result = project.build()
    assert result.refs == {} and result.built == []
    assert "could not reach the registry" in result.failed["base"]


@pytest.fixture
def ecr(aws):
    import boto3

    client = boto3.client("ecr", endpoint_url=aws, region_name="us-east-1")
    client.create_repository(repositoryName="flowship")
    return client


def _record_in_ecr(ecr, project: Project, tags: list[str]) -> None:
    """Play ECR's storage: what was pushed (to the local registry) becomes visible to ECR's API."""
    for tag in tags:
        manifest, media_type = project.registry.manifest(project.repository, tag)
        # The digest ECR would compute (moto's own is not the manifest's sha256):
        # a code image is then made on exactly the manifest ECR named.
        ecr.put_image(repositoryName="flowship", imageTag=tag, imageManifest=manifest.decode(),
                      imageManifestMediaType=media_type, imageDigest="sha256:" + hashlib.sha256(manifest).hexdigest())


def test_ecr_decides_what_exists_and_signs_in_with_a_masked_token(project, ecr):
    # ECR's API (existence, credentials) is moto's; the pushes go to the local
    # registry named by `registry`, standing in for the ECR endpoint.
    pyproject = project.pyproject().replace("[tool.flowship]\n", '[tool.flowship]\necr-repository = "flowship"\n')
    seed = project.seed({"pyproject.toml": pyproject})
    _, first = project.build()
    assert first.ok, first.failed
    assert len(first.built) == 2  # ECR had neither image
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    assert console.redact(f"login {password}") == "login ***"

    _record_in_ecr(ecr, project, project.registry.tags(project.repository))
    head = project.repo.commit({"flows/etl.py": cpu_flow("etl") + "\n# v2\n"})
    _, second = project.build(base=seed)
    assert second.built == [f"base-{head}"]  # describe_images found the deps image


def test_a_missing_ecr_repository_fails_instead_of_assuming(project, aws):
    pyproject = project.pyproject().replace("[tool.flowship]\n", '[tool.flowship]\necr-repository = "absent"\n')
    project.seed({"pyproject.toml": pyproject})
    _, result = project.build()
    assert result.built == [] and "does not exist" in result.failed["base"]
