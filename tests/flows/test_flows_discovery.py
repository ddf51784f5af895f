"""flowship's static discovery finds every example flow in this repository's flows/."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    # name: (file, machine family, GPU?, schedules)
    "weekly-training": ("flows/train.py", "ml", True, [{"cron": "0 6 * * 1", "timezone": "UTC"}]),
    "prepare-dataset": ("flows/etl.py", "base", False, [{"cron": "0 5 * * *", "timezone": "UTC"}]),
    "hyperparameter-sweep": ("flows/sweep.py", "ml", True, []),
    "jackknife-plus": ("flows/jackknife.py", "ml", True, []),
    "cleanup-previews": ("flows/cleanup_previews.py", "base", False, []),
    "deployment-health": ("flows/health.py", "base", False, [{"cron": "0 7 * * *", "timezone": "UTC"}]),
}


def test_discovery_finds_every_example_flow():
    discovery = pytest.importorskip("flowship.discovery")
    if not hasattr(discovery, "discover"):
        pytest.skip("flowship.discovery.discover does not exist yet (helper A's issue)")
    from flowship.config import load_config

    found = discovery.discover(load_config(ROOT, env={}))
    assert found.problems == []
    records = {r.name: r for r in found.records}
    assert set(records) == set(EXPECTED)
    for name, (file, family, gpu, schedules) in EXPECTED.items():
        record = records[name]
        assert record.file == file
        assert record.workflow.machine.family == family and record.workflow.machine.is_gpu is gpu
        assert record.workflow.schedules_json() == schedules


def test_training_is_declared_exactly_like_the_seed():
    from flowship import AwsEcsImage, AwsEcsMachine

    source = (ROOT / "flows/train.py").read_text()
    assert (
        "machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml)"
        in source
    )
    from flows.train import workflow

    assert workflow.machine == AwsEcsMachine(
        is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml
    )


def test_flows_load_with_only_the_runtime_the_code_image_ships(tmp_path):
    """Code images carry flowship's pure runtime files only, not the package:
    every flow module must import with just those (and its own dependencies)."""
    import subprocess
    import sys

    from flowship.images.source import runtime_files

    for name, content in runtime_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    modules = [f"flows.{Path(file).stem}" for file, *_ in EXPECTED.values()]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"assert sys.modules['flowship'].__file__.startswith({str(tmp_path)!r}), sys.modules['flowship'].__file__\n"
        "assert 'flowship.deploy' not in sys.modules and 'flowship.config' not in sys.modules\n"
    )
    # The image's PYTHONPATH: the code first, then the runtime (images/templates/code.Dockerfile.j2).
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{ROOT}:{tmp_path}"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
