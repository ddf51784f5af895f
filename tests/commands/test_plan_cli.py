"""`flowship plan` in-process and as a subprocess: output, exit codes, what it imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowship.cli import main
from testing.git import Repo, cpu_flow, seed_flow


def run_plan(repo: Repo, *args: str, env: dict[str, str] | None = None) -> int:
    return main(["--root", str(repo.path), "plan", *args], env=env or {})


def test_plan_json_on_stdout_table_on_stderr(repo: Repo, capsys):
    base = repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl"), "lib/util.py": "X = 1\n"})
    repo.commit({"flows/etl.py": "import lib.util\n" + cpu_flow("etl"), "flows/train.py": None})
    assert run_plan(repo, "--base", base, "--json") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["schema"] == 1 and doc["scope"] == {"kind": "main", "branch": "main", "slug": "main", "pr": None}
    assert [(w["name"], w["deployment"], w["reasons"]) for w in doc["workflows"]] == [("etl", "etl/main", ["flows/etl.py"])]
    assert doc["delete"] == [{"name": "train", "deployment": "train/main"}]
    assert [(i["name"], i["rebuild"]) for i in doc["images"]] == [("base", False)]
    assert "etl/main" in err and "<- flows/etl.py" in err and "delete:" in err and "train/main" in err
    assert "deps unchanged" in err

    assert run_plan(repo, "--base", base) == 0
    out, err = capsys.readouterr()
    assert out == "" and "etl/main" in err


def test_branch_defaults_to_the_current_branch_and_pr_previews(repo: Repo, capsys):
    base = repo.commit({"flows/etl.py": cpu_flow("etl")})
    repo.git("checkout", "-q", "-b", "Feature/Big_Change")
    repo.commit({"flows/etl.py": cpu_flow("etl") + "\n"})
    assert run_plan(repo, "--base", base, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scope"]["kind"] == "branch" and doc["scope"]["branch"] == "Feature/Big_Change"
    assert doc["workflows"][0]["deployment"] == f"etl/{doc['scope']['slug']}"
    assert run_plan(repo, "--base", base, "--branch", "main", "--pr", "5", "--json") == 0
    assert json.loads(capsys.readouterr().out)["scope"]["pr"] == 5


def test_nothing_to_do_all_flow_and_force_rebuild(repo: Repo, capsys):
    base = repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl")})
    repo.commit({"docs/x.md": "words"})
    assert run_plan(repo, "--base", base) == 0
    assert "nothing to deploy" in capsys.readouterr().err
    assert run_plan(repo, "--all", "--json") == 0
    assert {w["reasons"][0] for w in json.loads(capsys.readouterr().out)["workflows"]} == {"(all)"}
    assert run_plan(repo, "--flow", "train", "--force-rebuild", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in doc["workflows"]] == ["train"]
    assert doc["images"][0]["rebuild"] is True and "(forced)" in doc["images"][0]["reasons"]


def test_no_base_and_no_prefect_plans_everything(repo: Repo, capsys):
    repo.commit({"flows/train.py": seed_flow("train")})
    assert run_plan(repo, "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["base"] is None and "planning every workflow" in err


def test_bad_input_exits_2(repo: Repo, capsys):
    repo.commit({"flows/train.py": seed_flow("train")})
    assert run_plan(repo, "--base", "no-such-rev") == 2
    assert "unknown revision 'no-such-rev'" in capsys.readouterr().err
    assert run_plan(repo, "--all", "--flow", "nope") == 2
    assert "no workflow is named 'nope'" in capsys.readouterr().err
    base = repo.head()
    repo.commit({"flows/broken.py": "from flowship import Workflow\nfrom prefect import flow\nw = Workflow(machine=M)\n"
                                     "@flow\ndef broken():\n    pass\n"})
    assert run_plan(repo, "--base", base, "--json") == 2  # the plan is still printed
    out, err = capsys.readouterr()
    assert json.loads(out)["problems"][0].startswith("flows/broken.py:3: ")
    assert "flows/broken.py:3" in err
    repo.git("checkout", "-q", "--detach", "HEAD")
    assert run_plan(repo, "--base", base) == 2
    assert "pass --branch NAME" in capsys.readouterr().err


def test_a_missing_root_is_named_not_blamed_on_git(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "missing"), "plan", "--branch", "main"], env={}) == 2
    err = capsys.readouterr().err
    assert "missing is not a directory" in err and "git is not installed" not in err


def test_plan_imports_neither_prefect_nor_flow_code(repo: Repo, tmp_path):
    marker = tmp_path / "imported"
    flow = f"open({str(marker)!r}, 'w').close()\nimport prefect\n" + seed_flow("train")
    base = repo.commit({"flows/train.py": seed_flow("train"), "lib/x.py": "X = 1\n"})
    repo.commit({"flows/train.py": "import lib.x\n" + flow, "lib/x.py": "X = 2\n"})
    code = (
        "import sys\nfrom flowship.cli import main\n"
        f"rc = main(['--root', {str(repo.path)!r}, 'plan', '--base', {base!r}, '--json'], env={{}})\n"
        "heavy = sorted(m for m in ('prefect', 'boto3', 'docker', 'torch') if m in sys.modules)\n"
        "print('HEAVY', heavy, rc, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "HEAVY [] 0" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["workflows"][0]["name"] == "train"
    assert not marker.exists()


@pytest.mark.integration
def test_without_base_the_last_deployed_commit_is_read_from_prefect(repo: Repo, prefect_api, capsys):
    from flowship.config import load_config
    from flowship.deploy import record_deployed
    from flowship.scope import Scope

    first = repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl"), "pyproject.toml":
                         '[tool.flowship]\nproject = "plan-cli-test"\n'})
    repo.commit({"flows/etl.py": cpu_flow("etl") + "\n"})
    env = {"PREFECT_API_URL": prefect_api}
    record_deployed(load_config(repo.path, env), Scope.main(), first)
    assert run_plan(repo, "--json", env=env) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["base"] == first and [w["name"] for w in doc["workflows"]] == ["etl"]
    assert "the last deployed commit" in err


def test_a_branch_without_base_compares_with_its_merge_base(repo: Repo, capsys):
    repo.commit({"flows/etl.py": cpu_flow("etl"), "flows/train.py": seed_flow("train")})
    repo.git("checkout", "-q", "-b", "feature/etl")
    repo.commit({"flows/etl.py": cpu_flow("etl") + "\n# tweak\n"})
    repo.git("checkout", "-q", "main")
    repo.commit({"flows/train.py": seed_flow("train") + "\n# main moved on\n"})
    repo.git("checkout", "-q", "feature/etl")
    assert run_plan(repo, "--json") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["base"] == repo.git("merge-base", "main", "feature/etl")
    assert [w["name"] for w in doc["workflows"]] == ["etl"]
    assert "comparing with the merge base with main" in err


def test_main_without_base_or_server_plans_everything(repo: Repo, capsys):
    repo.commit({"flows/etl.py": cpu_flow("etl"), "flows/train.py": seed_flow("train")})
    assert run_plan(repo, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["base"] is None and sorted(w["name"] for w in doc["workflows"]) == ["etl", "train"]


def test_root_and_debug_go_before_or_after_the_command_and_every_command_has_examples(repo: Repo, capsys):
    repo.commit({"flows/etl.py": cpu_flow("etl")})
    assert main(["discover", "--root", str(repo.path), "--json", "--debug"], env={}) == 0
    after = json.loads(capsys.readouterr().out)
    assert main(["--root", str(repo.path), "discover", "--json"], env={}) == 0
    assert json.loads(capsys.readouterr().out) == after and [w["name"] for w in after["workflows"]] == ["etl"]
    from flowship.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description and f"flowship {name}" in text.split("examples:")[1], name
        if any("--target" in a.option_strings for a in sub._actions):
            assert "where deployments go: local (a process work pool) or ecs" in " ".join(text.split())


def test_planning_imports_no_network_client_and_no_process_pool():
    """What a plan's start-up pays for (issue: planning a small repository is mostly import time):
    the build stage's HTTP and registry clients and multiprocessing load only when used."""
    import subprocess
    import sys

    heavy = ["urllib.request", "http.client", "ssl", "multiprocessing", "dxf", "requests", "jinja2",
             "prefect", "boto3", "docker", "httpx", "github"]
    code = ("import sys, flowship.cli, flowship.commands.plan, flowship.changes, flowship.images.inputs; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
