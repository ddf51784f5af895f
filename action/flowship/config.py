"""`[tool.flowship]` and the environment, read once into one frozen object.

This is the only module that reads `os.environ` (through `load_config`'s
`env` argument, which tests pass explicitly). Unknown or mistyped keys are
errors naming the key, so a typo never silently falls back to a default.
A pyproject.toml that cannot be read as TOML at all (not UTF-8, nested too
deeply, `tool` not a table) is one sentence naming the file, exit 2.

`project` names this repository's records, locks and deployment tags on a
Prefect server that other repositories may share, so its default comes from
the repository, never a constant: `GITHUB_REPOSITORY` (`owner/name`) in
GitHub Actions, else the `owner/name` of the `origin` remote's URL, else the
name of the repository's folder (the directory itself outside git). Both
`owner/name` forms are lowercased, as GitHub treats them, so a local run and
CI agree. A flowship project in a subdirectory of its repository appends
that path (`owner/name/ml/pipelines`), so two projects of one monorepo stay
apart too.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flowship import git, globs
from flowship.errors import ConfigError, FlowshipError

PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class GpuCapacity:
    """An ECS capacity provider backed by GPU instances of one type."""

    name: str  # the ECS capacity provider's name
    instance_type: str
    gpus: int
    vcpus: int
    memory: int  # MiB
    disk: int  # GiB


@dataclass(frozen=True)
class ImageFamily:
    """A repository's own image family, or an override of a built-in one."""

    name: str
    template: str | None = None  # repo-relative jinja2 Dockerfile; None = built-in
    requirements: tuple[str, ...] = ()
    context: tuple[str, ...] = ()  # repo-relative globs copied into the deps build
    args: Mapping[str, str] = field(default_factory=dict)  # template parameters
    platform: str = "linux/amd64"


@dataclass(frozen=True)
class AwsConfig:
    region: str | None = None
    cluster: str = "flowship"
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    log_group: str = "/flowship"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    prefect_api_key_secret_arn: str | None = None
    gpu_capacity: tuple[GpuCapacity, ...] = ()
    # USD an hour by instance type, or fargate-vcpu-hour / fargate-gb-hour / fargate-storage-gb-hour (ecs/costs.py)
    prices: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PruneConfig:
    """`[tool.flowship.prune]`: what `flowship prune` and the cleanup-previews flow remove."""

    stale_days: int = 30  # a preview not updated for this many days goes; 0: never for its age


@dataclass(frozen=True)
class Environment:
    """What comes from the environment: endpoints and secrets, never from pyproject."""

    prefect_api_url: str | None = None
    prefect_api_key: str | None = None
    prefect_ui_url: str | None = None
    aws_endpoint_url: str | None = None
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    in_actions: bool = False
    cache_dir: str | None = None  # the plan's parse cache (FLOWSHIP_CACHE_DIR)
    checkouts_dir: str | None = None  # the local target's per-commit checkouts (FLOWSHIP_CHECKOUTS_DIR)
    # The Actions context: the GITHUB_* variables (event name and payload path,
    # $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY, repository, run). Read by
    # flowship.actions.events and flowship.actions.github, never straight from os.environ.
    github: Mapping[str, str] = field(default_factory=dict)
    # The composite action's inputs, which reach `flowship ci` through `env:`.
    target: str | None = None  # FLOWSHIP_TARGET: local | ecs
    flows: tuple[str, ...] = ()  # FLOWSHIP_FLOWS: deploy these whatever changed
    force_rebuild: bool = False  # FLOWSHIP_FORCE_REBUILD
    run_after_deploy: bool = False  # FLOWSHIP_RUN: start a run of each deployed flow and wait
    dry_run: bool = False  # FLOWSHIP_DRY_RUN: plan and report only
    verify: bool = False  # FLOWSHIP_VERIFY: smoke-run what a deploy to main changed, roll back what fails

    def secrets(self) -> list[str]:
        return [s for s in (self.prefect_api_key, self.github_token) if s]


@dataclass(frozen=True)
class Config:
    root: Path
    flows: str = "flows"
    default_branch: str = "main"
    project: str = "flowship"
    data: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # glob -> flow names
    images: Mapping[str, ImageFamily] = field(default_factory=dict)
    registry: str | None = None  # any registry, e.g. localhost:5000/flowship
    ecr_repository: str | None = None
    aws: AwsConfig = field(default_factory=AwsConfig)
    local_pool: str = "flowship-local"
    ecs_pool: str = "flowship-ecs"
    prune: PruneConfig = field(default_factory=PruneConfig)
    env: Environment = field(default_factory=Environment)


_TOP = {"flows", "default-branch", "project", "data", "images", "registry", "ecr-repository", "aws", "pools", "prune"}
_IMAGE = {"template", "requirements", "context", "args", "platform"}
_AWS = {
    "region", "cluster", "execution-role-arn", "task-role-arn", "log-group", "subnets",
    "security-groups", "assign-public-ip", "prefect-api-key-secret-arn", "gpu-capacity", "prices",
}
_CAPACITY = {"name", "instance-type", "gpus", "vcpus", "memory", "disk"}
_POOLS = {"local", "ecs"}
_PRUNE = {"stale-days"}


def load_config(root: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read `<root>/pyproject.toml`; no file or no table means all defaults."""
    root = Path(root)
    path = root / PYPROJECT
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}.") from None
    return parse_config(text, root=root, env=os.environ if env is None else env)


def parse_config(text: str, *, root: Path, env: Mapping[str, str]) -> Config:
    try:
        doc = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pyproject.toml is not valid TOML: {exc}.") from None
    except RecursionError:  # tomllib recurses once per nested inline table or array
        raise ConfigError("pyproject.toml nests tables or arrays too deeply to read.") from None
    tool = doc.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"pyproject.toml's `tool` must be a table, not {type(tool).__name__}.")
    table = _table("tool.flowship", tool.get("flowship", {}))
    _check_keys("tool.flowship", table, _TOP)
    pools = _table("tool.flowship.pools", table.get("pools", {}))
    _check_keys("tool.flowship.pools", pools, _POOLS)
    return Config(
        root=root,
        flows=_inside("tool.flowship.flows", _str("tool.flowship.flows", table.get("flows", "flows"))).strip("/"),
        default_branch=_str("tool.flowship.default-branch", table.get("default-branch", "main")),
        project=_str("tool.flowship.project", table["project"]) if "project" in table else default_project(root, env),
        data={
            _glob("tool.flowship.data", glob): _strs(f"tool.flowship.data.{glob!r}", names)
            for glob, names in _table("tool.flowship.data", table.get("data", {})).items()
        },
        images={
            name: _image(name, spec)
            for name, spec in _table("tool.flowship.images", table.get("images", {})).items()
        },
        registry=_opt_str("tool.flowship.registry", table.get("registry")),
        # The action's `ecr-repository` input (FLOWSHIP_ECR_REPOSITORY) overrides pyproject.
        ecr_repository=env.get("FLOWSHIP_ECR_REPOSITORY")
        or _opt_str("tool.flowship.ecr-repository", table.get("ecr-repository")),
        aws=_aws(_table("tool.flowship.aws", table.get("aws", {}))),
        local_pool=_str("tool.flowship.pools.local", pools.get("local", "flowship-local")),
        ecs_pool=_str("tool.flowship.pools.ecs", pools.get("ecs", "flowship-ecs")),
        prune=_prune(_table("tool.flowship.prune", table.get("prune", {}))),
        env=environment(env),
    )


_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def default_project(root: Path, env: Mapping[str, str]) -> str:
    """`project` when pyproject does not set it: the repository's own name (see the module's docstring)."""
    top: Path | None = None
    prefix = ""
    repository = env.get("GITHUB_REPOSITORY", "").strip()
    name = repository.lower() if _OWNER_NAME.match(repository) else None
    try:
        # One git call for both: `--show-prefix` is root's path below the top level.
        result = git.run(root, "rev-parse", "--show-toplevel", "--show-prefix", check=False)
        if result.returncode == 0:
            lines = result.stdout.decode("utf-8", "surrogateescape").splitlines()
            top, prefix = Path(lines[0]), (lines[1] if len(lines) > 1 else "").strip("/")
            if name is None:  # in Actions GITHUB_REPOSITORY says it: no second git call
                name = _owner_name(git.origin_url(root) or "")
    except FlowshipError:  # no git, or no such directory: the folder's name still names it
        pass
    if name is None:
        name = (top or root).name or "flowship"
    return f"{name}/{prefix}" if prefix else name


def _owner_name(url: str) -> str | None:
    """`owner/name` of a remote URL: https://host/owner/name.git, git@host:owner/name, a path."""
    if "://" in url:
        url = url.split("://", 1)[1].partition("/")[2]  # past the host (and any credentials)
    elif ":" in url and not url.startswith("/"):
        url = url.split(":", 1)[1]  # scp-like git@host:owner/name
    parts = [part for part in url.split("?", 1)[0].split("/") if part]
    if len(parts) < 2:
        return None
    candidate = f"{parts[-2]}/{parts[-1].removesuffix('.git')}".lower()
    return candidate if _OWNER_NAME.match(candidate) else None


def environment(env: Mapping[str, str]) -> Environment:
    return Environment(
        prefect_api_url=env.get("PREFECT_API_URL") or None,
        prefect_api_key=env.get("PREFECT_API_KEY") or None,
        prefect_ui_url=env.get("FLOWSHIP_PREFECT_UI_URL") or env.get("PREFECT_UI_URL") or None,
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        github_token=env.get("GITHUB_TOKEN") or None,
        github_api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        in_actions=env.get("GITHUB_ACTIONS") == "true",
        cache_dir=env.get("FLOWSHIP_CACHE_DIR") or None,
        checkouts_dir=env.get("FLOWSHIP_CHECKOUTS_DIR") or None,
        github={k: v for k, v in env.items() if k.startswith(("GITHUB_", "RUNNER_"))},
        target=env.get("FLOWSHIP_TARGET") or None,
        flows=tuple(f for f in env.get("FLOWSHIP_FLOWS", "").replace(",", " ").split() if f),
        force_rebuild=_env_bool(env, "FLOWSHIP_FORCE_REBUILD"),
        run_after_deploy=_env_bool(env, "FLOWSHIP_RUN"),
        dry_run=_env_bool(env, "FLOWSHIP_DRY_RUN"),
        verify=_env_bool(env, "FLOWSHIP_VERIFY"),
    )


def yes_no(value: object) -> bool | None:
    """The one reading of a yes/no setting (environment, dispatch inputs): None when it is neither."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"", "0", "false", "no", "off"}:
        return False
    if text in {"1", "true", "yes", "on"}:
        return True
    return None


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    value = yes_no(env.get(name, ""))
    if value is None:
        raise ConfigError(f"{name}={env.get(name)!r} must be true or false.")
    return value


def _image(name: str, spec: Any) -> ImageFamily:
    key = f"tool.flowship.images.{name}"
    spec = _table(key, spec)
    _check_keys(key, spec, _IMAGE)
    args = _table(f"{key}.args", spec.get("args", {}))
    return ImageFamily(
        name=name,
        template=_inside(f"{key}.template", _opt_str(f"{key}.template", spec.get("template"))),
        requirements=tuple(_inside(f"{key}.requirements", r) for r in _strs(f"{key}.requirements", spec.get("requirements", []))),
        context=tuple(_glob(f"{key}.context", g) for g in _strs(f"{key}.context", spec.get("context", []))),
        args={k: str(v) for k, v in args.items()},
        platform=_str(f"{key}.platform", spec.get("platform", "linux/amd64")),
    )


def _aws(table: dict[str, Any]) -> AwsConfig:
    _check_keys("tool.flowship.aws", table, _AWS)
    capacities = table.get("gpu-capacity", [])
    if not isinstance(capacities, list):
        raise ConfigError("tool.flowship.aws.gpu-capacity must be an array of tables ([[tool.flowship.aws.gpu-capacity]]).")
    assign = table.get("assign-public-ip", False)
    if not isinstance(assign, bool):
        raise ConfigError("tool.flowship.aws.assign-public-ip must be true or false.")
    return AwsConfig(
        region=_opt_str("tool.flowship.aws.region", table.get("region")),
        cluster=_str("tool.flowship.aws.cluster", table.get("cluster", "flowship")),
        execution_role_arn=_opt_str("tool.flowship.aws.execution-role-arn", table.get("execution-role-arn")),
        task_role_arn=_opt_str("tool.flowship.aws.task-role-arn", table.get("task-role-arn")),
        log_group=_str("tool.flowship.aws.log-group", table.get("log-group", "/flowship")),
        subnets=_strs("tool.flowship.aws.subnets", table.get("subnets", [])),
        security_groups=_strs("tool.flowship.aws.security-groups", table.get("security-groups", [])),
        assign_public_ip=assign,
        prefect_api_key_secret_arn=_opt_str(
            "tool.flowship.aws.prefect-api-key-secret-arn", table.get("prefect-api-key-secret-arn")
        ),
        gpu_capacity=tuple(_capacity(i, c) for i, c in enumerate(capacities)),
        prices={k: _price(f"tool.flowship.aws.prices.{k}", v)
                for k, v in _table("tool.flowship.aws.prices", table.get("prices", {})).items()},
    )


def _price(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise ConfigError(f"{key} must be a price in US dollars an hour (0 or more), not {value!r}.")
    return float(value)


def _prune(table: dict[str, Any]) -> PruneConfig:
    _check_keys("tool.flowship.prune", table, _PRUNE)
    days = table.get("stale-days", PruneConfig.stale_days)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        raise ConfigError(f"tool.flowship.prune.stale-days must be a whole number of days from 0 to 3650, not {days!r}.")
    return PruneConfig(stale_days=days)


def _capacity(index: int, spec: Any) -> GpuCapacity:
    key = f"tool.flowship.aws.gpu-capacity[{index}]"
    spec = _table(key, spec)
    _check_keys(key, spec, _CAPACITY)
    for required in sorted(_CAPACITY):
        if required not in spec:
            raise ConfigError(f"{key}.{required} is missing; a GPU capacity needs {', '.join(sorted(_CAPACITY))}.")
    return GpuCapacity(
        name=_str(f"{key}.name", spec["name"]),
        instance_type=_str(f"{key}.instance-type", spec["instance-type"]),
        gpus=_pos_int(f"{key}.gpus", spec["gpus"]),
        vcpus=_pos_int(f"{key}.vcpus", spec["vcpus"]),
        memory=_pos_int(f"{key}.memory", spec["memory"]),
        disk=_pos_int(f"{key}.disk", spec["disk"]),
    )


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(sorted(allowed))}."
            raise ConfigError(f"{where}.{key} is not a flowship setting.{hint}")


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, not {type(value).__name__}.")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string, not {value!r}.")
    return value


def _inside(key: str, path: Any) -> Any:
    """A repository-relative path: never absolute, never through `..`, so nothing outside the repository is read."""
    if isinstance(path, str) and (PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts
                                  or "\\" in path or "\0" in path):
        raise ConfigError(f"{key} must be a path inside the repository (relative, no `..`), not {path!r}.")
    return path


def _glob(key: str, pattern: str) -> str:
    # `..` can never match a repository path, but it says the author expects one outside.
    if ".." in PurePosixPath(pattern.lstrip("/")).parts or "\0" in pattern:
        raise ConfigError(f"{key}: {pattern!r} must name paths inside the repository (no `..`).")
    try:
        globs.check(pattern)
    except globs.GlobError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return pattern


def _opt_str(key: str, value: Any) -> str | None:
    return None if value is None else _str(key, value)


def _strs(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key} must be a list of strings, not {value!r}.")
    return tuple(value)


def _pos_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a positive whole number, not {value!r}.")
    return value
