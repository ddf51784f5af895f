"""GPU use: the sampler with a fake NVML module (no GPU here), its summary recorded on a real flow
run, and the deployment-health meta flow's advice for GPU deployments that leave the GPU idle."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import uuid
from dataclasses import dataclass

import pytest

from flowship import gpu


@dataclass
class Rates:
    gpu: float


@dataclass
class Memory:
    used: int
    total: int


def fake_nvml(utils: list[list[float]], used_mib: list[float], total_mib: float = 24576, fail: bool = False):
    """A pynvml stand-in: one GPU per `utils` row, each call of the utilisation reading the next value."""
    module = types.ModuleType("pynvml")
    calls = {"init": 0, "shutdown": 0}
    cursors = [0] * len(utils)

    def init():
        calls["init"] += 1
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def shutdown():
        calls["shutdown"] += 1

    def rates(handle):
        row = utils[handle]
        value = row[min(cursors[handle], len(row) - 1)]
        cursors[handle] += 1
        return Rates(value)

    def memory(handle):
        return Memory(int(used_mib[handle] * 2**20), int(total_mib * 2**20))

    module.nvmlInit = init
    module.nvmlShutdown = shutdown
    module.nvmlDeviceGetCount = lambda: len(utils)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetName = lambda h: b"NVIDIA A10G"
    module.nvmlDeviceGetUtilizationRates = rates
    module.nvmlDeviceGetMemoryInfo = memory
    module.calls = calls
    return module


def test_the_sampler_summarises_every_gpu_and_tags_the_run():
    nvml = fake_nvml([[10, 20, 30], [0, 0, 0]], used_mib=[6144, 1024])
    sampler = gpu.Sampler(interval=3600, nvml=nvml).start()  # one sample at start, then by hand
    sampler.sample()
    sampler.sample()
    summary = sampler.stop()
    assert (summary.gpus, summary.samples) == (2, 6)
    assert summary.util_mean == pytest.approx(10.0) and summary.util_max == 30
    assert summary.mem_peak == pytest.approx(25.0) and summary.mem_peak_mib == pytest.approx(6144)
    assert summary.tags() == ["gpu-util:10", "gpu-mem:25"]
    assert "2 × NVIDIA A10G, 6 samples: utilisation mean 10%, peak 30%" in summary.markdown()
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_without_nvml_or_a_gpu_it_records_no_gpu_and_starts_no_thread(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    sampler = gpu.Sampler(interval=0.01).start()
    assert sampler._thread is None
    summary = sampler.stop()
    assert summary.tags() == ["gpu-none"] and "nvidia-ml-py is not installed" in summary.markdown()

    broken = gpu.Sampler(nvml=fake_nvml([[50]], [100], fail=True)).start()
    assert broken._thread is None and "NVML Shared Library Not Found" in broken.stop().reason
    assert gpu.Sampler(nvml=fake_nvml([], [])).start().stop().reason == "NVML found no GPU"


def test_sampling_runs_on_its_own_clock_while_the_command_runs(tmp_path):
    nvml = fake_nvml([[40, 60, 80, 100]], used_mib=[2048])
    sampler = gpu.Sampler(interval=0.05, nvml=nvml).start()
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.4)"], check=True)
    summary = sampler.stop()
    assert summary.samples >= 3 and summary.util_max == 100


def test_the_module_entry_keeps_the_commands_exit_status(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    assert gpu.main(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert gpu.main([]) == 2


@pytest.mark.integration
@pytest.mark.usefixtures("drain_prefect")
def test_the_summary_lands_on_a_real_flow_run(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(f"gpu-probe-{uuid.uuid4().hex[:8]}")
        deployment = client.create_deployment(flow_id=flow_id, name="main", tags=["flowship", "gpu"])
        run = client.create_flow_run_from_deployment(deployment, tags=["mine", "gpu-util:99"])
    sampler = gpu.Sampler(interval=3600, nvml=fake_nvml([[4, 6]], used_mib=[512])).start()
    sampler.sample()
    gpu.record(sampler.stop(), str(run.id), api_url=prefect_api)
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(run.id).tags
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    # An older figure is replaced; the run's other tags (its own and its deployment's) are kept.
    assert sorted(t for t in tags if t.startswith("gpu-")) == ["gpu-mem:2", "gpu-util:5"]
    assert {"mine", "flowship", "gpu"} <= set(tags)
    assert artifact.key == "gpu-use" and "utilisation mean 5%" in artifact.data

    # deployment-health reads those tags back and suggests a CPU machine.
    from datetime import datetime, timedelta, timezone

    from flows.health import read_gpu_runs

    since = datetime.now(timezone.utc) - timedelta(hours=1)
    runs = [r for r in read_gpu_runs.fn(["flowship"], since) if r[0].startswith("gpu-probe-")]
    found = [a for a in gpu.advice(runs) if a.deployment.endswith("/main") and a.util_mean == 5]
    assert found and "a CPU machine" in found[0].suggestion


def test_advice_tells_a_cpu_machine_from_a_smaller_gpu():
    runs = [
        ("idle/main", ["gpu-util:3", "gpu-mem:10"]), ("idle/main", ["gpu-util:7", "gpu-mem:12"]),
        ("memory-bound/main", ["gpu-util:9", "gpu-mem:80"]),
        ("busy/main", ["gpu-util:85", "gpu-mem:90"]),
        ("unsampled/main", ["gpu-none"]),
    ]
    by_name = {a.deployment: a for a in gpu.advice(runs, util_below=20)}
    assert set(by_name) == {"idle/main", "memory-bound/main"}
    assert by_name["idle/main"].util_mean == 5 and by_name["idle/main"].runs == 2
    assert "CPU machine" in by_name["idle/main"].suggestion
    assert "smaller GPU" in by_name["memory-bound/main"].suggestion
    assert gpu.advice(runs, min_runs=2)[0].deployment == "idle/main"
    assert json.dumps([a.__dict__ for a in by_name.values()])  # plain data for the artifact
