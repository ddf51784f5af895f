import base64
import json
from urllib.parse import quote

import pytest

from flowship import console, redact
from flowship.actions.github import write_summary
from flowship.actions.report import Report, md, summary_markdown

KEY = "pnu_Sup3r_s3cret+key/=="


@pytest.fixture(autouse=True)
def clean():
    redact.reset()
    yield
    redact.reset()
    console.configure(actions=False)


@pytest.mark.parametrize("spell", [
    lambda k: k, md, lambda k: quote(k, safe=""), lambda k: quote(k),
    lambda k: base64.b64encode(f"user:{k}".encode()).decode(),
    lambda k: base64.b64encode(f"xy{k}".encode()).decode(),
])
def test_every_spelling_of_the_key_is_redacted(spell):
    spelled = spell(KEY)  # before the key is known, as a server would echo it
    redact.add(KEY)
    out = redact.redact(f"Failed: server said {spelled} back")
    assert "Sup3r" not in out and "***" in out


def test_url_credentials_come_from_the_environment_and_leave_no_text():
    found = redact.from_environment({"PREFECT_API_URL": "https://bob:h%40rd-pass@prefect.example/api",
                                     "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "AWS_SESSION_TOKEN": "FQoGZXIvYXdzE"})
    assert {"h@rd-pass", "wJalrXUtnFEMI", "FQoGZXIvYXdzE"} <= set(found)
    assert redact.redact("x https://eve:pw123@h/y") == "x https://eve:***@h/y"


def test_the_summary_and_stderr_never_carry_the_key(tmp_path, capsys):
    console.configure(actions=True, secrets=[KEY])
    report = Report(title="t", notes=(f"Failed: 401 Authorization: Bearer {KEY}",))
    path = tmp_path / "summary.md"
    write_summary(str(path), summary_markdown(report))
    console.info(f"echo {KEY}")
    text = path.read_text()
    err = capsys.readouterr().err
    assert "Sup3r" not in text and "Sup3r" not in err.split("::add-mask::")[-1].split("\n", 1)[1]
    assert f"::add-mask::{KEY}" in err


@pytest.mark.integration
def test_prefect_deployment_fields_never_carry_the_key(repo, prefect_api):
    """A commit message and a flow's description that quote the key reach Prefect's UI redacted."""
    from flowship.deploy import LocalTarget, deploy_plan
    from flowship.scope import Scope
    from flowship.workflow import Workflow
    from testing.deployments import FlowRepo, read_back, uid

    flows = FlowRepo.create(repo, prefect_api)
    name = f"leaky-{uid()}"
    flows.write_flow(name, Workflow(description=f"see {md(KEY)} and {KEY}", tags=[f"k-{KEY}"],
                                    parameters={"token": quote(KEY, safe="")}))
    head = flows.repo.commit(message=f"fix: the server said Authorization: Bearer {KEY}")
    redact.add(KEY)
    assert deploy_plan(flows.config, flows.plan(Scope.main(), head, [name]), LocalTarget(flows.config)).ok
    deployment = read_back(flows.api, [name])[f"{name}/main"]
    text = json.dumps(deployment)
    assert "Sup3r" not in text and "***" in deployment["description"]
