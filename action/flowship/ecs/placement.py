"""Placing a GPU machine on the smallest configured GPU capacity that fits it."""

from __future__ import annotations

from collections.abc import Sequence

from flowship.config import GpuCapacity
from flowship.errors import InputError
from flowship.workflow import AwsEcsMachine

# The ECS agent and the OS keep part of each instance; a task cannot reserve
# all of it. ECS reserves memory for the agent, commonly ~5% on GPU AMIs.
_MEMORY_HEADROOM = 0.95


def place(machine: AwsEcsMachine, capacities: Sequence[GpuCapacity], *, workflow: str = "") -> GpuCapacity:
    """The smallest capacity (by GPUs, then vCPUs, then memory) that fits `machine`.

    Raises InputError naming the limits the machine breaks on the largest
    capacity, so the fix (a smaller machine or a bigger instance) is plain.
    """
    who = workflow or "this workflow"
    if not machine.is_gpu:
        raise InputError(f"{who} is a CPU machine; it runs on Fargate, not GPU capacity.")
    if not capacities:
        raise InputError(
            f"{who} needs a GPU but [tool.flowship.aws] lists no gpu-capacity; "
            "add a [[tool.flowship.aws.gpu-capacity]] entry naming your GPU capacity provider."
        )
    ordered = sorted(capacities, key=lambda c: (c.gpus, c.vcpus, c.memory, c.disk))
    for capacity in ordered:
        broken = _broken_limits(machine, capacity)
        if not broken:
            return capacity
    # The loop ended on the largest capacity, so `broken` is what it lacks.
    raise InputError(
        f"{who} fits no configured GPU capacity; "
        f"the largest, {ordered[-1].name}, breaks: {'; '.join(broken)}. "
        "Ask for less or add a larger [[tool.flowship.aws.gpu-capacity]]."
    )

def _broken_limits(machine: AwsEcsMachine, capacity: GpuCapacity) -> list[str]:
    broken = []
    gpus = machine.gpu_count or 1
    if gpus > capacity.gpus:
        broken.append(f"gpu_count={gpus} > {capacity.gpus} GPUs")
    if machine.cpu_value > capacity.vcpus * 1024:
        broken.append(f"cpu_value={machine.cpu_value} > {capacity.vcpus * 1024} CPU units")
    usable = int(capacity.memory * _MEMORY_HEADROOM)
    if machine.memory_value > usable:
        broken.append(f"memory_value={machine.memory_value} > {usable} MiB usable of {capacity.memory}")
    if machine.storage is not None and machine.storage > capacity.disk:
        broken.append(f"storage={machine.storage} > {capacity.disk} GiB disk")
    return broken
