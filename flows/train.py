"""Weekly training: a small torch regression model, on the GPU when there is one.

Data comes from `data_path` (a CSV the `prepare-dataset` flow writes) or is
generated from `seed`. Checkpoints go to `checkpoint_dir`, a local path or any
fsspec URL (`s3://my-bucket/checkpoints` once `s3fs` is in the image); each
run writes `<checkpoint_dir>/weekly-training/<flow run id>/epoch-NNNN.pt` and
`final.pt`. Metrics (a table) and a report with the loss plot are Prefect
artifacts. The same seed and data give the same weights and losses on the CPU.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.common import data, report
from flowship import AwsEcsImage, AwsEcsMachine, Cron, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml),
    schedules=[Cron("0 6 * * 1")],  # Mondays 06:00 UTC; schedules are active on main only
    tags=["example", "training"],
    description="Weekly training of a small torch model; checkpoints, metrics and a loss plot.",
)


# Side effects and files that change under the same path: never served from a cache.
@task(cache_policy=NO_CACHE)
def load_dataset(data_path: str | None, n_samples: int, n_features: int, noise: float, seed: int) -> data.Dataset:
    if data_path:
        return data.from_csv(data.read_text(data_path))
    return data.synthetic_regression(n_samples, n_features, noise, seed)


@task(cache_policy=NO_CACHE)
def train_model(
    dataset: data.Dataset,
    config: dict,
    val_fraction: float,
    checkpoint_dir: str,
    checkpoint_every: int,
    device: str,
) -> dict:
    # torch lives on the ml image only; importing it here keeps the module cheap to load.
    from flows.common import torchkit

    logger = get_run_logger()
    fit_config = torchkit.FitConfig(**config)
    where = torchkit.pick_device(device)
    train_set, val_set = data.split(dataset, val_fraction, fit_config.seed)
    x, y = torchkit.tensors(train_set, where)
    val = torchkit.tensors(val_set, where) if len(val_set) else None
    run_dir = data.join(checkpoint_dir, "weekly-training", str(flow_run.get_id() or "local"))

    def on_epoch(epoch: int, result: torchkit.FitResult) -> None:
        val_loss = f", val {result.val_loss[-1]:.4f}" if result.val_loss else ""
        logger.info("epoch %d/%d: train %.4f%s", epoch, fit_config.epochs, result.train_loss[-1], val_loss)
        if checkpoint_every and epoch % checkpoint_every == 0 and epoch < fit_config.epochs:
            torchkit.save_checkpoint(data.join(run_dir, f"epoch-{epoch:04d}.pt"), result.model, epoch=epoch)

    result = torchkit.fit(x, y, fit_config, val=val, on_epoch=on_epoch)
    final = torchkit.save_checkpoint(
        data.join(run_dir, "final.pt"), result.model,
        epoch=fit_config.epochs, config=config, columns=list(dataset.columns),
        train_loss=result.train_loss, val_loss=result.val_loss,
    )
    logger.info("trained on %s at %.0f samples/s; checkpoint %s", where, result.samples_per_s, final)
    return {
        "device": where.type,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "samples_per_s": result.samples_per_s,
        "checkpoint": final,
    }


@task(cache_policy=NO_CACHE)
def publish(outcome: dict, config: dict, n_rows: int) -> None:
    val = outcome["val_loss"]  # empty when val_fraction leaves no validation rows
    epochs = [
        {"epoch": i + 1, "train_loss": round(t, 6), "val_loss": round(val[i], 6) if val else None}
        for i, t in enumerate(outcome["train_loss"])
    ]
    create_table_artifact(table=epochs, key="weekly-training-metrics", description="Loss per epoch.")
    plot = report.loss_plot_png({"train": outcome["train_loss"], "validation": outcome["val_loss"]}, "weekly training")
    summary = [{"setting": k, "value": v} for k, v in config.items()] + [
        {"setting": "rows", "value": n_rows},
        {"setting": "device", "value": outcome["device"]},
        {"setting": "samples/s", "value": round(outcome["samples_per_s"])},
        {"setting": "checkpoint", "value": outcome["checkpoint"]},
    ]
    create_markdown_artifact(
        markdown="\n\n".join([
            "# Weekly training",
            report.markdown_table(summary),
            f"Final train loss **{outcome['train_loss'][-1]:.4f}**"
            + (f", validation loss **{outcome['val_loss'][-1]:.4f}**." if outcome["val_loss"] else "."),
            report.png_markdown(plot, "training and validation loss"),
        ]),
        key="weekly-training-report",
        description="Settings, final losses and the loss plot.",
    )


@flow
def weekly_training(
    epochs: int = 20,
    n_samples: int = 4096,
    n_features: int = 4,
    noise: float = 0.3,
    batch_size: int = 64,
    lr: float = 0.01,
    width: int = 32,
    depth: int = 2,
    seed: int = 0,
    val_fraction: float = 0.2,
    data_path: str | None = None,
    checkpoint_dir: str = "./checkpoints",
    checkpoint_every: int = 5,
    device: str = "auto",
) -> dict:
    """Train, checkpoint and report; returns the final losses, the device and the checkpoint URL."""
    config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "width": width, "depth": depth, "seed": seed}
    dataset = load_dataset(data_path, n_samples, n_features, noise, seed)
    outcome = train_model(dataset, config, val_fraction, checkpoint_dir, checkpoint_every, device)
    publish(outcome, config, len(dataset))
    return {
        "final_train_loss": outcome["train_loss"][-1],
        "final_val_loss": outcome["val_loss"][-1] if outcome["val_loss"] else None,
        "device": outcome["device"],
        "checkpoint": outcome["checkpoint"],
        "samples_per_s": outcome["samples_per_s"],
    }
