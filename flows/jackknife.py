"""Jackknife+ folds: K-fold CV+ prediction intervals with a torch model.

Trains the K leave-one-fold-out models as parallel Prefect tasks, computes
each fresh point's interval exactly as in Barber, Candès, Ramdas and
Tibshirani (2021) (see `flows.common.conformal`), and reports the empirical
coverage and width on fresh points drawn from the same distribution as a
table artifact. The noise level is known (the data is generated), so the
ideal interval width, 2 * z_{1-alpha/2} * noise, is reported beside it.
"""

from __future__ import annotations

from statistics import NormalDist

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import data
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=4096, memory_value=8192, image=AwsEcsImage.ml),
    tags=["example", "conformal"],
    description="K-fold Jackknife+ (CV+) prediction intervals and their coverage on fresh points.",
)


@task(tags=["cv-plus-fold"], cache_policy=NO_CACHE, task_run_name="fold-{fold}")
def fit_fold(fold: int, held_out: list[int], train: data.Dataset, test: data.Dataset, epochs: int, seed: int, device: str) -> dict:
    """Train without fold `fold`; predict the held-out rows (for residuals) and every test point."""
    from flows.common import torchkit

    where = torchkit.pick_device(device)
    held = set(held_out)
    kept = train.take([i for i in range(len(train)) if i not in held])
    config = torchkit.FitConfig(epochs=epochs, batch_size=32, lr=0.01, width=32, depth=2, seed=seed + fold)
    result = torchkit.fit(*torchkit.tensors(kept, where), config)
    x_out, _ = torchkit.tensors(train.take(held_out), where)
    x_test, _ = torchkit.tensors(test, where)
    return {
        "fold": fold,
        "held_out": held_out,
        "held_out_predictions": torchkit.predict(result.model, x_out).cpu().tolist(),
        "test_predictions": torchkit.predict(result.model, x_test).cpu().tolist(),
        "train_loss": result.train_loss[-1],
    }


@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def jackknife_plus(
    n_train: int = 1000,
    n_test: int = 2000,
    k_folds: int = 10,
    alpha: float = 0.1,
    n_features: int = 2,
    noise: float = 0.3,
    epochs: int = 30,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """CV+ intervals at level 1 - alpha; returns the coverage and mean width on `n_test` fresh points."""
    import torch

    from flows.common import conformal

    train = data.synthetic_regression(n_train, n_features, noise, seed)
    test = data.synthetic_regression(n_test, n_features, noise, seed + 1)  # fresh points
    parts = conformal.folds(n_train, k_folds, seed)
    fits = fit_fold.map(
        range(k_folds), parts, train=unmapped(train), test=unmapped(test),
        epochs=unmapped(epochs), seed=unmapped(seed), device=unmapped(device),
    ).result()

    fold_of = torch.empty(n_train, dtype=torch.long)
    residuals = torch.empty(n_train, dtype=torch.float64)
    for fit in fits:
        rows = torch.tensor(fit["held_out"], dtype=torch.long)
        fold_of[rows] = fit["fold"]
        y = torch.tensor([train.targets[i] for i in fit["held_out"]], dtype=torch.float64)
        residuals[rows] = (y - torch.tensor(fit["held_out_predictions"], dtype=torch.float64)).abs()
    test_predictions = torch.tensor([fit["test_predictions"] for fit in fits], dtype=torch.float64)
    lower, upper = conformal.cv_plus_intervals(test_predictions, residuals, fold_of, alpha)

    y_test = torch.tensor(test.targets, dtype=torch.float64)
    covered = (lower <= y_test) & (y_test <= upper)
    coverage = float(covered.double().mean())
    width = float((upper - lower).mean())
    ideal = 2 * NormalDist().inv_cdf(1 - alpha / 2) * noise
    summary = {
        "target_coverage": round(1 - alpha, 4),
        "empirical_coverage": round(coverage, 4),
        "mean_width": round(width, 4),
        "oracle_width": round(ideal, 4),
        "n_train": n_train,
        "n_test": n_test,
        "k_folds": k_folds,
        "seed": seed,
    }
    create_table_artifact(table=[summary], key="jackknife-plus-coverage", description="CV+ coverage on fresh points.")
    create_table_artifact(
        table=[
            {"fold": f["fold"], "held_out": len(f["held_out"]), "train_loss": round(f["train_loss"], 5),
             "mean_residual": round(float(residuals[torch.tensor(f["held_out"])].mean()), 5)}
            for f in fits
        ],
        key="jackknife-plus-folds",
        description="The K leave-one-fold-out models.",
    )
    get_run_logger().info("CV+ at %.0f%%: coverage %.3f, mean width %.3f", 100 * (1 - alpha), coverage, width)
    return summary
