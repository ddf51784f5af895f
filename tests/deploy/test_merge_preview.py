"""What merging will do to production (issue 13, item 2): a preview deployed on
the real Prefect server is compared with what runs in `main`, read-only, and
the comment says which production deployments the merge creates, updates
(with the field diff) and deletes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flowship.actions.report import Report, comment_markdown
from flowship.deploy import LocalTarget, deploy_plan
from flowship.deploy.merge import merge_preview
from flowship.plan import Deletion
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Cron, Workflow

from testing.deployments import FlowRepo, counting_client, read_back, uid
from testing.markdown import render

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)


def test_the_preview_says_what_main_will_become(repo, prefect_api):
    flows = FlowRepo.create(repo, prefect_api)
    etl, old, same = f"etl-{uid()}", f"old-{uid()}", f"same-{uid()}"
    for name in (etl, old, same):
        flows.write_flow(name, Workflow(machine=CPU, schedules=[Cron("0 5 * * *")], parameters={"x": 1}))
    main_head = flows.repo.commit(message="main")
    config = flows.config
    assert deploy_plan(config, flows.plan(Scope.main(), main_head, [etl, old, same]), LocalTarget(config)).ok

    new = f"new-{uid()}"
    flows.write_flow(new, Workflow(machine=CPU))
    flows.declarations[etl] = Workflow(machine=AwsEcsMachine(cpu_value=512, memory_value=1024),
                                       schedules=[Cron("0 6 * * *")], parameters={"x": 2}, retries=3)
    head = flows.repo.commit(message="branch")
    scope = Scope.preview("feat/merge", 4)
    plan = flows.plan(scope, head, [etl, new, same])
    plan = replace(plan, delete=(Deletion(old, f"old/{scope.name}"),))
    assert deploy_plan(config, plan, LocalTarget(config)).ok
    before = read_back(flows.api, [etl, old, same, new])

    with counting_client(config) as (client, writes):
        merge = merge_preview(config, plan, client=client)
    assert writes == [] and read_back(flows.api, [etl, old, same, new]) == before  # read-only

    effects = {e.flow: e.effect for e in merge.effects}
    assert effects == {etl: "update", new: "create", old: "delete", same: "unchanged"}
    [update] = [e for e in merge.effects if e.flow == etl]
    assert {c.field for c in update.changes} == {"description", "parameters", "schedules", "job_variables"}

    doc = render(comment_markdown(Report(title="preview of feat/merge (#4)", scope=scope, head=head, plan=plan,
                                         merge=merge)))
    start = doc.blocks.index(("h3", "What merging will do to production"))
    assert doc.blocks[start + 1] == ("p", "1 to create, 1 to update, 1 to delete in main (read from Prefect now; "
                                          "nothing was written to main).")
    rows = {r[0][0]: r[1][0] for r in doc.blocks[start + 2][1][1:]}
    assert rows[new] == "🆕 will be created" and rows[old] == "🗑️ will be deleted" and rows[same] == "✅ stays as it is"
    assert rows[etl] == "🔄 will be updated: machine, parameter x, schedules, retries"
    diff = {r[0][0]: (r[1][0], r[2][0]) for r in doc.blocks[start + 5][1][1:]}
    assert doc.blocks[start + 4] == ("p", f"{etl}/main")
    assert diff == {
        "machine": ("CPU, 0.25 vCPU, 0.5 GiB, default storage, on a process worker",
                    "CPU, 0.5 vCPU, 1 GiB, default storage, on a process worker"),
        "parameter x": ("1", "2"),
        "schedules": ("cron 0 5 * * * UTC", "cron 0 6 * * * UTC"),
        "retries": ("—", "3"),
    }
