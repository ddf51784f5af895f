"""The declaration API: the seed verbatim, and invalid machines with clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowship import AwsEcsImage, AwsEcsMachine, Cron, Interval, Workflow
from flowship.errors import MachineError


def test_seed_declaration_verbatim():
    workflow = Workflow(
        machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml),
    )
    assert workflow.machine.gpu_count == 1
    assert workflow.machine.family == "ml"
    assert workflow.machine.to_json() == {
        "is_gpu": True, "storage": 50, "cpu_value": 2048, "memory_value": 4096, "image": "ml", "gpu_count": 1,
    }


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        (dict(cpu_value=2048, memory_value=1024), "memory_value", "with cpu_value=2048 Fargate offers 4096-16384"),
        (dict(cpu_value=3000, memory_value=4096), "cpu_value", "Fargate offers 256, 512, 1024"),
        (dict(cpu_value=1024, memory_value=2048, storage=10), "storage", "21-200 GiB on Fargate"),
        (dict(cpu_value=1024, memory_value=2048, storage=500), "storage", "21-200 GiB on Fargate"),
        (dict(is_gpu=True, gpu_count=-1), "gpu_count", "1-16 GPUs"),
        (dict(is_gpu=True, gpu_count=0), "gpu_count", "1-16 GPUs"),
        (dict(cpu_value=1024, memory_value=2048, gpu_count=1), "gpu_count", "Fargate, which has no GPUs"),
        (dict(is_gpu="yes"), "is_gpu", "True or False"),
        (dict(cpu_value=True), "cpu_value", "whole number"),
        (dict(is_gpu=True, memory_value=64), "memory_value", "128-2097152 MiB"),
        (dict(is_gpu=True, storage=0), "storage", "21-16384 GiB"),
        (dict(image="Not A Family"), "image", "AwsEcsImage.base, AwsEcsImage.ml"),
        (dict(cpu_value=8192, memory_value=17 * 1024), "memory_value", "16384-61440 in steps of 4096"),
    ],
)
def test_invalid_machines_name_field_value_and_allowed(kwargs, field, hint):
    with pytest.raises(MachineError) as info:
        AwsEcsMachine(**kwargs)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}={kwargs[field]!r} is invalid")
    assert hint in message


def test_machine_error_is_a_value_error():
    with pytest.raises(ValueError):
        AwsEcsMachine(cpu_value=1, memory_value=1)


def test_every_fargate_pair_constructs():
    from flowship.workflow import FARGATE_MEMORY

    for cpu, sizes in FARGATE_MEMORY.items():
        for memory in sizes:
            assert AwsEcsMachine(cpu_value=cpu, memory_value=memory).gpu_count == 0
    assert len(FARGATE_MEMORY[4096]) == 23  # 8-30 GiB in 1 GiB steps


def test_custom_family_by_name_and_builtin_by_string():
    assert AwsEcsMachine(image="my-cuda").family == "my-cuda"
    assert AwsEcsMachine(image="ml").image is AwsEcsImage.ml


def test_workflow_carries_schedules_parameters_tags_and_options():
    workflow = Workflow(
        machine=AwsEcsMachine(),
        schedules=["0 6 * * 1", 3600, timedelta(minutes=5), Cron("0 0 * * *", timezone="Europe/Paris")],
        parameters={"epochs": 3},
        tags=["team:vision"],
        description="weekly retraining",
        retries=2,
        retry_delay_seconds=30,
        timeout_seconds=3600,
        concurrency_limit=1,
    )
    assert workflow.schedules == (Cron("0 6 * * 1"), Interval(3600), Interval(300.0), Cron("0 0 * * *", "Europe/Paris"))
    again = Workflow.from_json(workflow.to_json())
    assert again == workflow


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(schedules=["not cron"]), "schedules"),
        (dict(schedules=[-5]), "schedules"),
        (dict(retries=-1), "retries"),
        (dict(tags=[""]), "tags"),
        (dict(parameters=[1, 2]), "parameters"),
        (dict(timeout_seconds="soon"), "timeout_seconds"),
        (dict(machine={"is_gpu": True}), "machine"),
    ],
)
def test_invalid_workflow_fields(kwargs, field):
    with pytest.raises(MachineError) as info:
        Workflow(**kwargs)
    assert info.value.field == field
