#!/usr/bin/env python
"""Throughput of the weekly-training flow's training step, GPU beside CPU, in one run.

Runs `flows.common.torchkit.fit` (what the flow's `train_model` task runs) on
the same generated data and model on the CPU, and on the GPU when torch sees
one, and prints samples/s for each and the GPU/CPU ratio. Without a GPU it
says so and measures the CPU only. Each device gets a warm-up fit first
(CUDA context, kernel selection, allocator) that is not timed.

    .venv/bin/python scripts/bench/bench_training.py [--samples N] [--epochs E] ...
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the flows package lives at the repository root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per device; the median is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    from flows.common import data, torchkit

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = data.synthetic_regression(args.samples, args.features, seed=0)
    config = torchkit.FitConfig(epochs=args.epochs, batch_size=args.batch_size, width=args.width, depth=args.depth)
    warmup = torchkit.FitConfig(epochs=1, batch_size=args.batch_size, width=args.width, depth=args.depth)

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        gpu = torch.cuda.get_device_name(0)
    else:
        gpu = None
        print("no GPU: torch.cuda.is_available() is False on this machine; measuring the CPU only.")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads" + (f", GPU {gpu}" if gpu else ""))
    print(f"model: {args.depth}x{args.width} MLP on {args.features} features; {args.samples} samples x "
          f"{args.epochs} epochs, batch {args.batch_size}, median of {args.repeats}\n")

    rates: dict[str, float] = {}
    for device in devices:
        x, y = torchkit.tensors(dataset, device)
        torchkit.fit(x, y, warmup)
        runs = [torchkit.fit(x, y, config) for _ in range(args.repeats)]
        rates[device] = statistics.median(r.samples_per_s for r in runs)
        final = runs[0].train_loss[-1]
        print(f"{device:>5}: {rates[device]:>12,.0f} samples/s   (final train loss {final:.4f})")

    if "cuda" in rates:
        print(f"\nGPU / CPU: {rates['cuda'] / rates['cpu']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
