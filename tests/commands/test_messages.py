"""Messages people act on (issue 13, item 6): a typo names the field it meant,
an unknown flow in `flowship run` names the closest deployed one, and an
invalid CPU/memory pair is one short sentence with the sizes for that CPU."""

from __future__ import annotations

import pytest

from flowship.cli import main
from flowship.config import load_config
from flowship.deploy import LocalTarget, deploy_plan
from flowship.discovery import discover
from flowship.errors import InputError
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, FieldError, Workflow

from testing.deployments import FlowRepo, uid


def test_a_mistyped_field_names_the_one_it_meant():
    with pytest.raises(FieldError) as caught:
        AwsEcsMachine(cpu_valu=2048)
    assert str(caught.value) == "AwsEcsMachine has no field 'cpu_valu'; did you mean 'cpu_value'?"
    # Still what Python code expects of a bad keyword, and bad input to the CLI.
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, InputError)
    with pytest.raises(FieldError, match=r"^Workflow has no field 'schedule'; did you mean 'schedules'\?$"):
        Workflow(schedule=["0 5 * * *"])
    with pytest.raises(FieldError, match=r"^AwsEcsMachine has no field 'zzz'; its fields are is_gpu, storage, "):
        AwsEcsMachine(zzz=1)


def test_a_mistyped_field_in_a_flow_file_is_a_problem_at_its_line(repo):
    repo.write({
        "pyproject.toml": '[tool.flowship]\nflows = "flows"\n',
        "flows/etl.py": ("from prefect import flow\nfrom flowship import AwsEcsMachine, Workflow\n\n"
                         "workflow = Workflow(machine=AwsEcsMachine(cpu_valu=2048))\n\n@flow\ndef etl():\n    pass\n"),
    })
    found = discover(load_config(repo.path, {}))
    assert found.records == []
    assert [str(p) for p in found.problems] == [
        "flows/etl.py:4: AwsEcsMachine has no field 'cpu_valu'; did you mean 'cpu_value'?"]


def test_an_invalid_memory_is_one_sentence_with_that_cpus_sizes():
    with pytest.raises(InputError) as caught:
        AwsEcsMachine(cpu_value=2048, memory_value=1024)
    assert str(caught.value) == ("memory_value=1024 is invalid: with cpu_value=2048 Fargate offers "
                                 "4096-16384 in steps of 1024 MiB.")
    with pytest.raises(InputError, match=r"^memory_value=4096 is invalid: with cpu_value=256 Fargate offers "
                                         r"512, 1024, 2048 MiB\.$"):
        AwsEcsMachine(cpu_value=256, memory_value=4096)


@pytest.mark.integration
def test_run_of_an_unknown_flow_suggests_the_closest(repo, prefect_api, capsys):
    flows = FlowRepo.create(repo, prefect_api)
    name = f"prices-{uid()}"
    flows.write_flow(name, Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512)))
    head = flows.repo.commit(message="prices")
    assert deploy_plan(flows.config, flows.plan(Scope.main(), head, [name]), LocalTarget(flows.config)).ok

    code = main(["run", name[:-1] + "x", "--root", str(flows.repo.path)], {"PREFECT_API_URL": prefect_api})
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"there is no deployment {name[:-1]}x/main; did you mean {name!r}?" in err
