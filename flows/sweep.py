"""Hyperparameter sweep: one Prefect task per trial, mapped, at most 4 at a time.

A grid (every combination) or a random sample of `n_trials` configurations
over learning rate, width and depth. Every trial trains on the same data with
its own seed-derived generator, so a trial's result does not depend on which
others run beside it. Results go into one table artifact, best first, and the
flow returns the best configuration.

Concurrency: the flow's `ThreadPoolTaskRunner(max_workers=4)` bounds the
trials one run trains at once (they share the machine's one GPU). It needs no
server-side setup, so it behaves the same on a local server and in ECS. To cap
trials across *all* runs as well, create a tag concurrency limit on the
server: every trial carries the tag `sweep-trial`
(`prefect concurrency-limit create sweep-trial 2`).
"""

from __future__ import annotations

import itertools
import random
from typing import Literal

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import data
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=4096, memory_value=8192, image=AwsEcsImage.ml),
    tags=["example", "sweep"],
    description="Grid or random search over learning rate, width and depth.",
)


def configurations(
    strategy: str, learning_rates: list[float], widths: list[int], depths: list[int], n_trials: int, seed: int
) -> list[dict]:
    """The trials' settings: every combination (grid) or `n_trials` drawn without repeats (random)."""
    grid = [{"lr": lr, "width": w, "depth": d} for lr, w, d in itertools.product(learning_rates, widths, depths)]
    if strategy == "grid":
        return grid
    if strategy == "random":
        return random.Random(seed).sample(grid, min(n_trials, len(grid)))
    raise ValueError(f"strategy={strategy!r} is not one of 'grid', 'random'")


@task(tags=["sweep-trial"], cache_policy=NO_CACHE, task_run_name="trial-lr{settings[lr]}-w{settings[width]}-d{settings[depth]}")
def train_trial(settings: dict, dataset: data.Dataset, epochs: int, batch_size: int, seed: int, device: str) -> dict:
    from flows.common import torchkit

    where = torchkit.pick_device(device)
    train_set, val_set = data.split(dataset, 0.25, seed)
    config = torchkit.FitConfig(epochs=epochs, batch_size=batch_size, seed=seed, **settings)
    result = torchkit.fit(*torchkit.tensors(train_set, where), config, val=torchkit.tensors(val_set, where))
    return settings | {
        "train_loss": round(result.train_loss[-1], 6),
        "val_loss": round(result.val_loss[-1], 6),
        "best_val_loss": round(min(result.val_loss), 6),
        "seconds": round(result.seconds, 3),
    }


@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def hyperparameter_sweep(
    strategy: Literal["grid", "random"] = "grid",
    learning_rates: list[float] = [0.003, 0.01, 0.03],  # noqa: B006 - Prefect copies parameters per run
    widths: list[int] = [16, 64],  # noqa: B006
    depths: list[int] = [1, 2],  # noqa: B006
    n_trials: int = 6,
    epochs: int = 15,
    n_samples: int = 2048,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Run every trial, publish the table, return the best trial (lowest final validation loss)."""
    dataset = data.synthetic_regression(n_samples, seed=seed)
    trials = configurations(strategy, learning_rates, widths, depths, n_trials, seed)
    futures = train_trial.map(
        trials, dataset=unmapped(dataset), epochs=unmapped(epochs), batch_size=unmapped(batch_size),
        seed=unmapped(seed), device=unmapped(device),
    )
    # Sorting on the settings too makes ties resolve the same way every time.
    results = sorted(futures.result(), key=lambda r: (r["val_loss"], r["lr"], r["width"], r["depth"]))
    table = [{"rank": i + 1} | r for i, r in enumerate(results)]
    create_table_artifact(table=table, key="hyperparameter-sweep-trials", description=f"{len(results)} trials, best first.")
    best = results[0]
    get_run_logger().info("best of %d trials: %s", len(results), best)
    return best
