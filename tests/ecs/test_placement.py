"""GPU machines go on the smallest configured capacity that fits."""

from __future__ import annotations

import pytest

from flowship import AwsEcsImage, AwsEcsMachine
from flowship.config import GpuCapacity
from flowship.errors import InputError
from flowship.ecs.placement import place

SMALL = GpuCapacity("g5-xlarge", "g5.xlarge", gpus=1, vcpus=4, memory=16384, disk=250)
BIG = GpuCapacity("g5-12xlarge", "g5.12xlarge", gpus=4, vcpus=48, memory=196608, disk=3800)


def test_seed_machine_goes_on_the_smallest():
    machine = AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml)
    assert place(machine, [BIG, SMALL]) is SMALL


def test_more_gpus_or_memory_moves_up():
    assert place(AwsEcsMachine(is_gpu=True, gpu_count=2), [SMALL, BIG]) is BIG
    assert place(AwsEcsMachine(is_gpu=True, memory_value=16000), [SMALL, BIG]) is BIG


def test_no_fit_names_the_limit():
    with pytest.raises(InputError) as info:
        place(AwsEcsMachine(is_gpu=True, gpu_count=8), [SMALL, BIG], workflow="train")
    assert "train fits no configured GPU capacity" in str(info.value)
    assert "gpu_count=8 > 4 GPUs" in str(info.value)


def test_memory_headroom_is_explained():
    with pytest.raises(InputError) as info:
        place(AwsEcsMachine(is_gpu=True, memory_value=16384), [SMALL])
    assert "memory_value=16384 > 15564 MiB usable of 16384" in str(info.value)


def test_no_capacity_configured():
    with pytest.raises(InputError, match="lists no gpu-capacity"):
        place(AwsEcsMachine(is_gpu=True), [])
