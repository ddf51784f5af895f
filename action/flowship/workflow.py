"""The declaration API: `Workflow`, `AwsEcsMachine`, `AwsEcsImage`.

Pure: no I/O, no configuration, no Prefect import. Everything that is true on
every AWS account is checked at construction; what depends on the team's
capacity (which GPU instance fits) is checked when deploying to ECS
(`flowship.ecs.placement`).
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, cast

from flowship.errors import InputError, MachineError

FAMILY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")


class AwsEcsImage(enum.StrEnum):
    """Image families flowship ships; a repository may add its own by name."""

    base = "base"  # slim Python with Prefect and prefect-aws
    ml = "ml"  # CUDA runtime with a CUDA build of torch


# Fargate's CPU units -> the memory sizes (MiB) it offers with them.
def _gib(start: int, stop: int, step: int = 1) -> tuple[int, ...]:
    return tuple(g * 1024 for g in range(start, stop + 1, step))


FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _gib(1, 4),
    1024: _gib(2, 8),
    2048: _gib(4, 16),
    4096: _gib(8, 30),
    8192: _gib(16, 60, 4),
    16384: _gib(32, 120, 8),
}
FARGATE_STORAGE = (21, 200)  # GiB of ephemeral storage; 20 is the default when unset
EC2_STORAGE = (21, 16384)  # GiB; the instance's disk is checked at placement
EC2_CPU = (128, 196608)  # ECS CPU units a task may reserve on EC2
EC2_MEMORY = (128, 2_097_152)  # MiB
MAX_GPUS = 16
MAX_COUNT = 10_000  # retries, concurrency limits
MAX_SECONDS = 366 * 24 * 3600  # a year: delays, timeouts, intervals


class FieldError(InputError, TypeError):
    """A keyword a declaration class does not have; a TypeError too, as Python's own is."""


class _Declared:
    """Names an unknown keyword, and the field it was probably meant to be.

    Python's own message (`AwsEcsMachine.__init__() got an unexpected keyword
    argument 'cpu_valu'`) says neither which field exists nor where; this runs
    before the dataclass's `__init__`, so a typo never gets that far.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        names = [f.name for f in fields(cls) if f.init]  # type: ignore[arg-type]
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"its fields are {', '.join(names)}."
                raise FieldError(f"{cls.__name__} has no field {key!r}; {hint}")
        return super().__new__(cls)


def _describe_memory(sizes: tuple[int, ...]) -> str:
    if len(sizes) <= 3:
        return ", ".join(str(m) for m in sizes)
    step = sizes[1] - sizes[0]
    return f"{sizes[0]}-{sizes[-1]} in steps of {step}"


def _require_int(name: str, value: object) -> int:
    # bool is an int in Python; `cpu_value=True` is a typo, not 1 CPU unit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise MachineError(name, value, "it must be a whole number")
    return value


@dataclass(frozen=True)
class AwsEcsMachine(_Declared):
    """The machine a workflow runs on.

    CPU machines run on Fargate, so `cpu_value`/`memory_value` must be a pair
    Fargate offers and `storage` 21-200 GiB. GPU machines run on EC2 GPU
    capacity; `gpu_count` defaults to 1 there and must be 0 elsewhere.
    """

    is_gpu: bool = False
    storage: int | None = None  # GiB; None = the platform default (20 GiB)
    cpu_value: int = 1024  # ECS CPU units (1024 = 1 vCPU)
    memory_value: int = 2048  # MiB
    image: AwsEcsImage | str = AwsEcsImage.base
    gpu_count: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.is_gpu, bool):
            raise MachineError("is_gpu", self.is_gpu, "it must be True or False")
        cpu = _require_int("cpu_value", self.cpu_value)
        memory = _require_int("memory_value", self.memory_value)
        self._check_image()
        if self.is_gpu:
            self._check_gpu(cpu, memory)
        else:
            self._check_fargate(cpu, memory)

    def _check_image(self) -> None:
        image = self.image
        if isinstance(image, AwsEcsImage):
            return
        if not isinstance(image, str) or not FAMILY_NAME.match(image):
            raise MachineError(
                "image",
                image,
                "use AwsEcsImage.base, AwsEcsImage.ml or the name of a family in "
                "[tool.flowship.images] (lowercase letters, digits and '-')",
            )
        if image in AwsEcsImage.__members__:
            object.__setattr__(self, "image", AwsEcsImage(image))

    def _check_gpu(self, cpu: int, memory: int) -> None:
        gpus = 1 if self.gpu_count is None else _require_int("gpu_count", self.gpu_count)
        if gpus < 1 or gpus > MAX_GPUS:
            raise MachineError(
                "gpu_count", self.gpu_count, f"a GPU machine needs 1-{MAX_GPUS} GPUs"
            )
        object.__setattr__(self, "gpu_count", gpus)
        _check_range("cpu_value", cpu, EC2_CPU, "ECS CPU units")
        _check_range("memory_value", memory, EC2_MEMORY, "MiB")
        if self.storage is not None:
            storage = _require_int("storage", self.storage)
            _check_range("storage", storage, EC2_STORAGE, "GiB")

    def _check_fargate(self, cpu: int, memory: int) -> None:
        if self.gpu_count not in (None, 0):
            gpus = _require_int("gpu_count", self.gpu_count)
            raise MachineError(
                "gpu_count", gpus, "CPU machines run on Fargate, which has no GPUs; "
                "set is_gpu=True to ask for GPUs"
            )
        object.__setattr__(self, "gpu_count", 0)
        if cpu not in FARGATE_MEMORY:
            raise MachineError(
                "cpu_value", cpu,
                f"Fargate offers {', '.join(map(str, FARGATE_MEMORY))} CPU units",
            )
        if memory not in FARGATE_MEMORY[cpu]:
            raise MachineError(
                "memory_value", memory,
                f"with cpu_value={cpu} Fargate offers {_describe_memory(FARGATE_MEMORY[cpu])} MiB",
            )
        if self.storage is not None:
            storage = _require_int("storage", self.storage)
            _check_range("storage", storage, FARGATE_STORAGE, "GiB on Fargate")

    @property
    def family(self) -> str:
        """The image family's name (`AwsEcsImage.ml` -> "ml")."""
        return str(self.image)

    def to_json(self) -> dict[str, Any]:
        """The machine in the constructor's own field names (the plan's shape)."""
        return {
            "is_gpu": self.is_gpu,
            "storage": self.storage,
            "cpu_value": self.cpu_value,
            "memory_value": self.memory_value,
            "image": self.family,
            "gpu_count": self.gpu_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AwsEcsMachine:
        return cls(**dict(data))


def _check_range(name: str, value: int, bounds: tuple[int, int], unit: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise MachineError(name, value, f"it must be {low}-{high} {unit}")


@dataclass(frozen=True)
class Cron(_Declared):
    """A cron schedule, as Prefect's `CronSchedule` takes it."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.cron, str) or len(self.cron.split()) not in (5, 6):
            raise MachineError("schedules", self.cron, "a cron schedule has 5 fields, e.g. '0 3 * * 1'")


@dataclass(frozen=True)
class Interval(_Declared):
    """An interval schedule, in seconds."""

    seconds: int | float

    def __post_init__(self) -> None:
        seconds = self.seconds
        if (isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds)
                or not 0 < seconds <= MAX_SECONDS):
            raise MachineError("schedules", seconds, f"an interval is a number of seconds, more than 0 and at most {MAX_SECONDS}")


Schedule = Cron | Interval


def _schedule(value: object) -> Schedule:
    if isinstance(value, Cron | Interval):
        return value
    if isinstance(value, str):
        return Cron(value)
    if isinstance(value, timedelta):
        return Interval(value.total_seconds())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Interval(value)
    raise MachineError("schedules", value, "use a cron string, a number of seconds, Cron(...) or Interval(...)")


@dataclass(frozen=True)
class Workflow(_Declared):
    """What flowship needs to know about one flow, declared next to it.

    The workflow's name is its Prefect flow's name; everything here is what
    the deployment adds around the flow.
    """

    machine: AwsEcsMachine = field(default_factory=AwsEcsMachine)
    schedules: Sequence[Schedule | str | int | float | timedelta] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    description: str | None = None
    retries: int | None = None
    retry_delay_seconds: int | float | None = None
    timeout_seconds: int | float | None = None
    concurrency_limit: int | None = None
    # The parameters of a short run that proves a deploy to main works
    # (`flowship deploy --verify`); None: this workflow has no smoke run.
    smoke: Mapping[str, Any] | None = None
    # The @flow function this declaration belongs to; needed only when the
    # module defines several flows (discovery pairs a lone @flow by itself).
    flow: str | None = None

    def __post_init__(self) -> None:
        if self.flow is not None and (not isinstance(self.flow, str) or not self.flow.isidentifier()):
            raise MachineError("flow", self.flow, "name the module's @flow function, e.g. flow=\"train\"")
        if not isinstance(self.machine, AwsEcsMachine):
            raise MachineError("machine", self.machine, "it must be an AwsEcsMachine(...)")
        schedules = self.schedules
        if isinstance(schedules, str | Cron | Interval | int | float | timedelta):
            schedules = [schedules]
        object.__setattr__(self, "schedules", tuple(_schedule(s) for s in schedules))
        if not isinstance(self.parameters, Mapping) or not all(isinstance(k, str) for k in self.parameters):
            raise MachineError("parameters", self.parameters, "it must be a dict of parameter names to values")
        object.__setattr__(self, "parameters", dict(self.parameters))
        if self.smoke is not None:
            if not isinstance(self.smoke, Mapping) or not all(isinstance(k, str) for k in self.smoke):
                raise MachineError("smoke", self.smoke, "it must be a dict of parameter names to values, e.g. {\"epochs\": 1}")
            object.__setattr__(self, "smoke", dict(self.smoke))
        tags = [self.tags] if isinstance(self.tags, str) else list(self.tags)
        for tag in tags:
            if not isinstance(tag, str) or not tag or len(tag) > 100:
                raise MachineError("tags", tag, "a tag is a non-empty string of at most 100 characters")
        object.__setattr__(self, "tags", tuple(tags))
        if self.description is not None and not isinstance(self.description, str):
            raise MachineError("description", self.description, "it must be a string")
        for name in ("retries", "concurrency_limit"):
            value = getattr(self, name)
            if value is not None and (_require_int(name, value) < 0):
                raise MachineError(name, value, "it must be 0 or more")
        for name in ("retries", "concurrency_limit"):
            value = getattr(self, name)
            if value is not None and value > MAX_COUNT:
                raise MachineError(name, value, f"it must be 0-{MAX_COUNT}")
        for name in ("retry_delay_seconds", "timeout_seconds"):
            value = getattr(self, name)
            # NaN and infinity pass `< 0` and would make the plan invalid JSON.
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not 0 <= value <= MAX_SECONDS
            ):
                raise MachineError(name, value, f"it must be a number of seconds, 0-{MAX_SECONDS}")

    @property
    def schedule_list(self) -> tuple[Schedule, ...]:
        """`schedules` as `__post_init__` left them: only `Cron` and `Interval`."""
        return cast(tuple[Schedule, ...], self.schedules)

    def schedules_json(self) -> list[dict[str, Any]]:
        return [
            {"cron": s.cron, "timezone": s.timezone} if isinstance(s, Cron) else {"interval": s.seconds}
            for s in self.schedule_list
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine.to_json(),
            "schedules": self.schedules_json(),
            "parameters": dict(self.parameters),
            "tags": list(self.tags),
            "description": self.description,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
            "concurrency_limit": self.concurrency_limit,
            "flow": self.flow,
            # Only when declared, so plans and caches of workflows without one read as before.
            **({"smoke": dict(self.smoke)} if self.smoke is not None else {}),
        }

    def entry_json(self) -> dict[str, Any]:
        """The shape of a `discover`/`plan` entry: `image` and `machine`, the rest as `declaration`."""
        declaration = self.to_json()
        machine = declaration.pop("machine")
        return {"image": machine["image"], "machine": machine, "declaration": declaration}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Workflow:
        data = dict(data)
        machine = AwsEcsMachine.from_json(data.pop("machine"))
        schedules = [
            Cron(s["cron"], s.get("timezone", "UTC")) if "cron" in s else Interval(s["interval"])
            for s in data.pop("schedules", [])
        ]
        return cls(machine=machine, schedules=schedules, **data)
