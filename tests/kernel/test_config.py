"""[tool.flowship] read once into a typed object; wrong keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowship.config import load_config, parse_config
from flowship.errors import ConfigError


def parse(text: str, env: dict | None = None):
    return parse_config(text, root=Path("/repo"), env=env or {})


def test_no_pyproject_means_defaults(tmp_path):
    config = load_config(tmp_path, env={})
    assert (config.flows, config.default_branch, config.local_pool, config.ecs_pool) == (
        "flows", "main", "flowship-local", "flowship-ecs",
    )


def test_full_table():
    config = parse(
        """
        [tool.flowship]
        flows = "pipelines/"
        default-branch = "master"
        data = { "data/*.csv" = ["train"] }
        registry = "127.0.0.1:5000/flowship"
        [tool.flowship.images.cuda12]
        template = "docker/cuda12.Dockerfile.j2"
        requirements = ["requirements.txt"]
        args = { PYTHON = 3.11 }
        [tool.flowship.aws]
        region = "eu-west-1"
        subnets = ["subnet-1"]
        [[tool.flowship.aws.gpu-capacity]]
        name = "gpu"
        instance-type = "g5.xlarge"
        gpus = 1
        vcpus = 4
        memory = 16384
        disk = 250
        [tool.flowship.pools]
        ecs = "gpu-pool"
        """.replace("\n        ", "\n"),
        env={"PREFECT_API_URL": "http://x/api", "PREFECT_API_KEY": "pnu_secret", "GITHUB_ACTIONS": "true"},
    )
    assert config.flows == "pipelines"
    assert config.data == {"data/*.csv": ("train",)}
    assert config.images["cuda12"].args == {"PYTHON": "3.11"}
    assert config.aws.gpu_capacity[0].memory == 16384
    assert config.ecs_pool == "gpu-pool"
    assert config.env.in_actions and config.env.secrets() == ["pnu_secret"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[tool.flowship]\nflow = 'x'", "tool.flowship.flow is not a flowship setting. Did you mean 'flows'?"),
        ("[tool.flowship]\nflows = 3", "tool.flowship.flows must be a non-empty string"),
        ("[tool.flowship.aws]\nsubnets = 'a'\nregion = 5", "tool.flowship.aws.region must be a non-empty string"),
        ("[[tool.flowship.aws.gpu-capacity]]\nname = 'g'", "tool.flowship.aws.gpu-capacity[0].disk is missing"),
        ("[tool.flowship.images.x]\ntemplat = 'a'", "tool.flowship.images.x.templat is not a flowship setting"),
        ("[tool.flowship\n", "not valid TOML"),
    ],
)
def test_wrong_keys_are_named(text, needle):
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert needle in str(info.value)
    assert info.value.exit_code == 2
