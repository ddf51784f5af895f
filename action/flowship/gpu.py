"""GPU use of a flow run: sampled through NVML while it runs, summarised on the run.

Shipped in every code image, so the standard library only: `pynvml` (the
`nvidia-ml-py` package of the `ml` family) is imported when sampling starts,
and its absence, or NVML finding no GPU, is "no GPU", which costs nothing.

`python -m flowship.gpu -- prefect flow-run execute` (the `ml` image's
entrypoint) runs the flow run's command as a child and samples every GPU a
few times a minute until it exits; then it writes one summary on the flow
run named by `PREFECT__FLOW_RUN_ID`: a markdown artifact `gpu-use` and tags
`gpu-util:<mean %>` and `gpu-mem:<peak %>` (through Prefect's REST API,
`PREFECT_API_URL`), or `gpu-none`. `advice` reads those tags back
for the `deployment-health` meta flow. The command's exit status is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

INTERVAL = 20.0  # seconds between samples: three lines a minute
UTIL_TAG = "gpu-util:"
MEM_TAG = "gpu-mem:"
NO_GPU_TAG = "gpu-none"


@dataclass
class Summary:
    """What a run did with its GPUs: means and peaks over every sample of every GPU."""

    gpus: int = 0
    samples: int = 0
    util_mean: float = 0.0  # percent
    util_max: float = 0.0
    mem_peak: float = 0.0  # percent of the GPU's memory
    mem_peak_mib: float = 0.0
    mem_total_mib: float = 0.0
    names: list[str] = field(default_factory=list)
    reason: str = ""  # why there are no samples

    def tags(self) -> list[str]:
        if not self.samples:
            return [NO_GPU_TAG]
        return [f"{UTIL_TAG}{round(self.util_mean)}", f"{MEM_TAG}{round(self.mem_peak)}"]

    def markdown(self) -> str:
        if not self.samples:
            return f"**GPU use**: no GPU ({self.reason or 'NVML found none'})."
        return (f"**GPU use** of {self.gpus} × {', '.join(sorted(set(self.names)))}, {self.samples} samples: "
                f"utilisation mean {self.util_mean:.0f}%, peak {self.util_max:.0f}%; memory peak "
                f"{self.mem_peak_mib:.0f} of {self.mem_total_mib:.0f} MiB ({self.mem_peak:.0f}%).")


class Sampler:
    """Samples every GPU NVML sees, on a daemon thread, until `stop()`."""

    def __init__(self, interval: float = INTERVAL, nvml: Any = None):
        self.interval = interval
        self._nvml = nvml
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._utils: list[float] = []
        self._mems: list[tuple[float, float]] = []  # (used MiB, total MiB)
        self._names: list[str] = []
        self._handles: list[Any] = []
        self._reason = ""

    def start(self) -> Sampler:
        nvml = self._nvml
        if nvml is None:
            try:
                import pynvml as nvml  # type: ignore[import-not-found, no-redef]
            except ImportError:
                self._reason = "nvidia-ml-py is not installed"
                return self
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._names = [_text(nvml.nvmlDeviceGetName(h)) for h in self._handles]
        except Exception as exc:  # NVMLError: no driver, no device
            self._reason = f"NVML: {exc}"
            return self
        if not self._handles:
            self._reason = "NVML found no GPU"
            return self
        self._nvml = nvml
        self.sample()  # one at once: a short run still gets a figure
        self._thread = threading.Thread(target=self._loop, name="flowship-gpu", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for handle in self._handles:
            try:
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # a GPU that fell off the bus: its later samples are missing
                continue
            self._utils.append(float(rates.gpu))
            self._mems.append((memory.used / 2**20, memory.total / 2**20))

    def stop(self) -> Summary:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        return self.summary()

    def summary(self) -> Summary:
        if not self._utils:
            return Summary(reason=self._reason or "no sample was taken")
        peak_used, total = max(self._mems, key=lambda m: m[0] / m[1] if m[1] else 0.0)
        return Summary(
            gpus=len(self._handles), samples=len(self._utils),
            util_mean=sum(self._utils) / len(self._utils), util_max=max(self._utils),
            mem_peak=100.0 * peak_used / total if total else 0.0, mem_peak_mib=peak_used, mem_total_mib=total,
            names=list(self._names),
        )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def record(summary: Summary, flow_run_id: str, *, api_url: str, api_key: str | None = None) -> None:
    """The summary on the flow run: an artifact and tags, through Prefect's REST API (no Prefect import here)."""
    def call(method: str, path: str, body: Any = None) -> Any:
        headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {api_key}"} if api_key else {})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{api_url.rstrip('/')}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    call("POST", "/artifacts/", {"key": "gpu-use", "type": "markdown", "data": summary.markdown(),
                                 "flow_run_id": flow_run_id, "description": "GPU use sampled through NVML"})
    run = call("GET", f"/flow_runs/{flow_run_id}")
    kept = [t for t in run.get("tags") or [] if not t.startswith((UTIL_TAG, MEM_TAG)) and t != NO_GPU_TAG]
    call("PATCH", f"/flow_runs/{flow_run_id}", {"tags": kept + summary.tags()})


@dataclass(frozen=True)
class Advice:
    deployment: str
    util_mean: float  # over the runs that reported it
    mem_peak: float
    runs: int
    suggestion: str


def advice(runs: Iterable[tuple[str, Sequence[str]]], *, util_below: float = 20.0, mem_below: float = 50.0,
           min_runs: int = 1) -> list[Advice]:
    """GPU deployments whose runs (`(deployment, run tags)`) left the GPU mostly idle, with what to do.

    Low utilisation and low memory: a CPU machine likely does; low
    utilisation but the memory used: a smaller GPU (or fewer) likely does.
    """
    seen: dict[str, list[tuple[float, float]]] = {}
    for deployment, tags in runs:
        util = _tag_number(tags, UTIL_TAG)
        mem = _tag_number(tags, MEM_TAG)
        if util is not None:
            seen.setdefault(deployment, []).append((util, mem if mem is not None else 0.0))
    out = []
    for deployment, figures in sorted(seen.items()):
        if len(figures) < min_runs:
            continue
        util = sum(u for u, _ in figures) / len(figures)
        mem = max(m for _, m in figures)
        if util >= util_below:
            continue
        suggestion = ("a CPU machine (AwsEcsMachine(is_gpu=False)) likely does" if mem < mem_below
                      else "a smaller GPU (or fewer gpu_count) likely does: the memory is used, the cores are not")
        out.append(Advice(deployment, util, mem, len(figures), suggestion))
    return out


def _tag_number(tags: Sequence[str], prefix: str) -> float | None:
    for tag in tags:
        if tag.startswith(prefix):
            try:
                return float(tag[len(prefix):])
            except ValueError:
                return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m flowship.gpu -- COMMAND...`: run COMMAND, sampling the GPUs, then record the summary."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m flowship.gpu -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    sampler = Sampler(float(os.environ.get("FLOWSHIP_GPU_INTERVAL", INTERVAL))).start()
    try:
        code = subprocess.call(args)
    finally:
        summary = sampler.stop()
    flow_run_id, api_url = os.environ.get("PREFECT__FLOW_RUN_ID"), os.environ.get("PREFECT_API_URL")
    if flow_run_id and api_url:
        try:
            record(summary, flow_run_id, api_url=api_url, api_key=os.environ.get("PREFECT_API_KEY"))
        except Exception as exc:  # the run's own outcome matters more than its GPU figures
            print(f"flowship: could not record GPU use on the flow run: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"flowship: {summary.markdown()}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
