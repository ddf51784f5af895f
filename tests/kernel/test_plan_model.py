"""The plan JSON (schema 1) round-trips and rejects malformed input clearly."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from flowship import AwsEcsImage, AwsEcsMachine, Workflow
from flowship.errors import EXIT_OK, EXIT_USAGE, InputError, Problem
from flowship.plan import Deletion, Plan, PlannedImage, PlannedWorkflow
from flowship.scope import Scope


def sample() -> Plan:
    scope = Scope.preview("feature/x", pr=3)
    workflow = Workflow(
        machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml),
        schedules=["0 6 * * 1"],
    )
    return Plan(
        base="a" * 40,
        head="b" * 40,
        scope=scope,
        workflows=(PlannedWorkflow("train", "flows/train.py", "flows/train.py:train", f"train/{scope.slug}", "ml", workflow, ("flows/train.py",), 5),),
        delete=(Deletion("old", f"old/{scope.slug}"),),
        images=(PlannedImage("ml", "ml-" + "b" * 40, False, (), "ml-deps-123"),),
    )


def test_contract_shape_and_round_trip():
    plan = sample()
    data = json.loads(plan.dumps())
    assert data["schema"] == 1
    assert set(data) >= {"schema", "base", "head", "scope", "workflows", "delete", "images"}
    assert data["scope"] == {"kind": "branch", "branch": "feature/x", "slug": plan.scope.slug, "pr": 3}
    entry = data["workflows"][0]
    assert set(entry) >= {"name", "file", "entrypoint", "deployment", "image", "machine", "reasons"}
    assert entry["machine"] == {"is_gpu": True, "storage": 50, "cpu_value": 2048, "memory_value": 4096, "image": "ml", "gpu_count": 1}
    assert data["images"][0] | {} == {"name": "ml", "tag": "ml-" + "b" * 40, "rebuild": False, "reasons": [], "deps_tag": "ml-deps-123"}
    assert Plan.from_json(data) == plan


@pytest.mark.parametrize("text", ["[]", '{"schema": 2}', '{"schema": 1, "base": null}', "not json"])
def test_malformed_plans_are_input_errors(tmp_path, text):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(InputError):
        Plan.load(path)


def test_problems_travel_as_data_and_notes_as_sentences():
    """A note that looks like `file:line: ...` is still a note: nothing is parsed back from text."""
    problem = Problem("flows/bad.py", 7, "Workflow(...) must be at the module's top level.")
    note = "flows/x.py:3: reads like a place, but the analysis wrote it as a note."
    plan = replace(sample(), problems=(problem,), notes=(note,))
    data = json.loads(plan.dumps())
    assert data["problems"] == [str(problem), note]  # the contract's list of sentences, unchanged
    assert data["declaration_problems"] == [{"file": "flows/bad.py", "line": 7, "message": problem.message}]
    back = Plan.from_json(data)
    assert back == plan and back.exit_code() == EXIT_USAGE
    only_note = replace(sample(), notes=(note,))
    assert Plan.from_json(json.loads(only_note.dumps())).exit_code() == EXIT_OK
