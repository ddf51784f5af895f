"""Numbers in declarations are finite and bounded: nothing invalid reaches the plan's JSON."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, strategies as st

from flowship.discovery.declarations import analyze
from flowship.errors import MachineError
from flowship.workflow import AwsEcsMachine, Interval, Workflow

HEADER = "from prefect import flow\nfrom flowship import Workflow, AwsEcsMachine\n"


def facts_of(declaration: str):
    source = f"{HEADER}workflow = Workflow({declaration})\n\n@flow\ndef f():\n    pass\n"
    return analyze(source.encode())


@pytest.mark.parametrize("field", ["retry_delay_seconds", "timeout_seconds"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True, 10**30])
def test_seconds_fields_reject_non_finite_bool_and_huge(field, value):
    with pytest.raises(MachineError, match=field):
        Workflow(**{field: value})


@pytest.mark.parametrize("field", ["retries", "concurrency_limit"])
@pytest.mark.parametrize("value", [math.inf, math.nan, True, 1.5, -1, 10**12])
def test_count_fields_reject_non_integers_and_huge(field, value):
    with pytest.raises(MachineError, match=field):
        Workflow(**{field: value})


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -5, True])
def test_interval_is_finite_and_positive(value):
    with pytest.raises(MachineError, match="schedules"):
        Interval(value)


@pytest.mark.parametrize("field", ["cpu_value", "memory_value", "storage", "gpu_count"])
@pytest.mark.parametrize("value", [math.inf, math.nan, True, 10**30])
def test_gpu_machine_fields_reject_non_finite_bool_and_huge(field, value):
    with pytest.raises(MachineError, match=field):
        AwsEcsMachine(is_gpu=True, **{field: value})


@pytest.mark.parametrize("declaration, field", [
    ("timeout_seconds=1e999", "timeout_seconds"),
    ("retry_delay_seconds=-1e999", "retry_delay_seconds"),
    ("parameters={'x': 1e999}", "finite numbers"),
    ("machine=AwsEcsMachine(is_gpu=True, storage=1e999)", "storage"),
])
def test_infinite_literals_are_problems_at_their_line(declaration, field):
    declared = facts_of(declaration).declared[0]
    assert declared.workflow is None
    assert field in declared.problem[1]


def test_huge_power_is_refused_quickly():
    start = time.monotonic()
    declared = facts_of("retries=9**9**9").declared[0]
    assert time.monotonic() - start < 1
    assert declared.workflow is None and "limited" in declared.problem[1]
    assert declared.problem[0] == 3


def test_small_arithmetic_still_reads():
    declared = facts_of("timeout_seconds=2 * 3600, retries=2**3").declared[0]
    assert declared.workflow["timeout_seconds"] == 7200 and declared.workflow["retries"] == 8


@given(st.one_of(st.floats(), st.integers(min_value=-10**40, max_value=10**40)))
def test_any_number_is_valid_or_refused_and_the_json_is_strict(value):
    declared = facts_of(f"timeout_seconds={value!r}, parameters={{'p': {value!r}}}").declared[0]
    if declared.workflow is not None:
        json.dumps(declared.workflow, allow_nan=False)
        assert 0 <= declared.workflow["timeout_seconds"] <= 366 * 24 * 3600
