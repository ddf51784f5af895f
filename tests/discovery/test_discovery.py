"""Static discovery: declarations read without importing flow code, problems at file:line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowship.cli import main
from flowship.config import load_config
from flowship.discovery.declarations import analyze
from flowship.discovery import CommitTree, discover, discover_tree
from flowship.errors import InputError
from flowship.workflow import AwsEcsImage, Cron, Interval
from testing.git import Repo, cpu_flow, seed_flow


def _discover(tmp_path: Path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return discover(load_config(tmp_path, {}))


def test_seed_declaration_with_uninstalled_imports(tmp_path):
    flow = "import torch_not_installed\nfrom sklearn_missing.model import thing\n" + seed_flow("train_model")
    found = _discover(tmp_path, {"flows/train.py": flow})
    assert found.problems == []
    [record] = found.records
    assert record.name == "train-model"
    assert record.function == "train_model"
    assert record.entrypoint == "flows/train.py:train_model"
    assert record.line == 7
    machine = record.workflow.machine
    assert (machine.is_gpu, machine.storage, machine.cpu_value, machine.memory_value) == (True, 50, 2048, 4096)
    assert machine.image is AwsEcsImage.ml and machine.gpu_count == 1


def test_module_import_form_and_everything_the_evaluator_reads(tmp_path):
    found = _discover(tmp_path, {"flows/etl.py": """
        import datetime
        import flowship as fs
        import prefect

        etl = fs.Workflow(
            machine=fs.AwsEcsMachine(cpu_value=512, memory_value=2 * 1024, storage=30, image="gpu-big"),
            schedules=[fs.Cron("0 3 * * *", timezone="Europe/Paris"), fs.Interval(600), datetime.timedelta(hours=1), "5 * * * *"],
            parameters={"rows": 10, "names": ["a", "b"], "nested": {"x": (1, 2)}, "neg": -1.5},
            tags=("etl", "nightly"),
            description="Nightly " + "ETL",
            retries=2,
            timeout_seconds=3600,
        )

        @prefect.flow(name="nightly-etl", log_prints=True)
        def run(rows: int = 10) -> int:
            return rows
    """})
    assert found.problems == []
    [record] = found.records
    assert record.name == "nightly-etl"
    wf = record.workflow
    assert wf.machine.memory_value == 2048 and wf.machine.image == "gpu-big"
    assert wf.schedules == (Cron("0 3 * * *", "Europe/Paris"), Interval(600), Interval(3600.0), Cron("5 * * * *"))
    assert wf.parameters == {"rows": 10, "names": ["a", "b"], "nested": {"x": [1, 2]}, "neg": -1.5}
    assert wf.tags == ("etl", "nightly") and wf.description == "Nightly ETL" and wf.retries == 2
    assert record.to_json()["machine"]["image"] == "gpu-big"


def test_aliases_async_flows_and_default_names(tmp_path):
    found = _discover(tmp_path, {"flows/a.py": """
        from prefect import flow as prefect_flow
        from flowship import Workflow as W, AwsEcsMachine as M
        w: W = W(machine=M())

        @prefect_flow()
        async def load_all_the_things():
            pass
    """})
    assert found.problems == []
    assert [r.name for r in found.records] == ["load-all-the-things"]


@pytest.mark.parametrize(
    "source, line, words",
    [
        ("from flowship import Workflow\nfrom prefect import flow\ndef f(:\n", 3, "syntax error"),
        (
            "from flowship import Workflow, AwsEcsMachine\nfrom prefect import flow\nCPU = 256\n"
            "w = Workflow(\n    machine=AwsEcsMachine(\n        cpu_value=CPU,\n    ),\n)\n@flow\ndef f(): pass\n",
            6, "the variable 'CPU'",
        ),
        (
            "from flowship import Workflow, AwsEcsMachine\nfrom prefect import flow\nimport os\n"
            "w = Workflow(tags=[os.getenv('X')])\n@flow\ndef f(): pass\n",
            4, "a function call",
        ),
        (
            "from flowship import Workflow, AwsEcsMachine\nfrom prefect import flow\n"
            "w = Workflow(\n    machine=AwsEcsMachine(\n        cpu_value=256,\n        memory_value=4096,\n    )\n)\n"
            "@flow\ndef f(): pass\n",
            6, "memory_value=4096 is invalid",
        ),
        (
            "from flowship import Workflow, AwsEcsMachine, AwsEcsImage\nfrom prefect import flow\n"
            "w = Workflow(machine=AwsEcsMachine(\n  image=AwsEcsImage.huge))\n@flow\ndef f(): pass\n",
            4, "AwsEcsImage has no family 'huge'",
        ),
        ("from flowship import Workflow\nw = Workflow(bogus=1)\n", 2, "Workflow has no field 'bogus'; its fields are"),
        ("from flowship import Workflow\n\nw = Workflow()\n", 3, "has no @flow function"),
        (
            "from flowship import Workflow\nfrom prefect import flow\nw = Workflow()\n"
            "@flow\ndef a(): pass\n@flow\ndef b(): pass\n",
            3, '2 @flow functions (a, b); say which one this workflow deploys with Workflow(..., flow="a")',
        ),
        (
            "from flowship import Workflow\nfrom prefect import flow\nw = Workflow(flow='c')\n@flow\ndef a(): pass\n",
            3, "Workflow(flow='c') names no @flow function of this module (it has: a)",
        ),
        (
            "from flowship import Workflow\nfrom prefect import flow\nw = Workflow()\nv = Workflow()\n@flow\ndef a(): pass\n",
            4, "a module declares one workflow",
        ),
        (
            "from flowship import Workflow\nfrom prefect import flow\nNAME = 'x'\nw = Workflow()\n"
            "@flow(name=NAME)\ndef a(): pass\n",
            5, "must be a string literal",
        ),
        (  # the plan finds flow names by their bytes, so an escaped name is refused
            "from flowship import Workflow\nfrom prefect import flow\nw = Workflow()\n"
            "@flow(name='a\\x2db')\ndef a(): pass\n",
            4, "written plainly",
        ),
        (
            "from flowship import Workflow\nfrom prefect import flow\nw = Workflow(**{'tags': []})\n@flow\ndef a(): pass\n",
            3, "cannot be read without running the module",
        ),
    ],
)
def test_each_problem_is_reported_at_its_line(tmp_path, source, line, words):
    good = cpu_flow("fine")
    found = _discover(tmp_path, {"flows/bad.py": source, "flows/good.py": good})
    assert "fine" in [r.name for r in found.records]  # the good one is still found
    [problem] = found.problems
    assert (problem.file, problem.line) == ("flows/bad.py", line)
    assert words in problem.message


def test_flow_keyword_picks_one_of_several_flows(tmp_path):
    found = _discover(tmp_path, {"flows/two.py": """
        from flowship import Workflow
        from prefect import flow
        w = Workflow(flow="second")
        @flow
        def first(): pass
        @flow(name="the-second")
        def second(): pass
    """})
    assert found.problems == []
    [record] = found.records
    assert (record.name, record.function, record.workflow.flow) == ("the-second", "second", "second")


def test_two_workflows_with_one_name_are_reported_at_both_places(tmp_path):
    found = _discover(tmp_path, {"flows/a.py": seed_flow("same"), "flows/sub/b.py": "# b\n\n" + seed_flow("same"),
                                 "flows/c.py": cpu_flow("other")})
    assert [r.name for r in found.records] == ["other"]
    assert [(p.file, p.line) for p in found.problems] == [("flows/a.py", 4), ("flows/sub/b.py", 7)]
    assert all("flows/a.py:4 and flows/sub/b.py:7" in p.message for p in found.problems)


def test_helpers_without_a_workflow_are_skipped_and_other_workflow_classes_ignored(tmp_path):
    found = _discover(tmp_path, {
        "flows/helpers.py": "def helper():\n    return 1\n",
        "flows/other.py": "from somewhere import Workflow\nw = Workflow(x=1)\n",
        "flows/__pycache__/junk.py": "def f(:\n",
    })
    assert found.records == [] and found.problems == []


def test_missing_flows_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="flows directory 'flows' does not exist"):
        discover(load_config(tmp_path, {}))


def test_discovery_of_a_commit_reads_blobs_not_the_working_tree(repo: Repo):
    sha = repo.commit({"flows/a.py": seed_flow("alpha")})
    repo.write({"flows/a.py": seed_flow("beta")})  # uncommitted
    found = discover_tree(CommitTree(repo.path, sha), "flows")
    assert [r.name for r in found.records] == ["alpha"]


def test_analysis_results_survive_the_cache_format():
    facts = analyze(seed_flow("x").encode())
    from flowship.discovery.declarations import ModuleFacts
    assert ModuleFacts.from_cache(facts.to_cache()) == facts


def test_cli_discover_json_and_exit_codes(tmp_path, capsys):
    _discover(tmp_path, {"flows/a.py": seed_flow("alpha"), "flows/b.py": "def f(:\n"})
    (tmp_path / "flows/b.py").write_text("from flowship import Workflow\nw = Workflow()\n")
    assert main(["--root", str(tmp_path), "discover", "--json"], env={}) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [w["name"] for w in doc["workflows"]] == ["alpha"]
    assert doc["workflows"][0]["entrypoint"] == "flows/a.py:alpha"
    assert doc["workflows"][0]["machine"]["is_gpu"] is True
    assert doc["problems"] == [{"file": "flows/b.py", "line": 2, "message": doc["problems"][0]["message"]}]
    assert "flows/b.py:2" in err and "alpha" in err

    (tmp_path / "flows/b.py").unlink()
    assert main(["--root", str(tmp_path), "discover"], env={}) == 0
    out, err = capsys.readouterr()
    assert out == "" and "1 workflow(s), 0 problem(s)" in err
