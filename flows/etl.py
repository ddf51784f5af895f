"""Daily ETL on Fargate: raw records in, a clean training CSV out.

Extracts raw string records (generated here, standing in for an upstream
export), drops the rows that are missing, non-numeric or out of range, writes
the clean dataset as CSV to `output` (a local path or fsspec URL) where the
`weekly-training` flow's `data_path` can read it, and publishes what it kept
and dropped as Prefect artifacts. No torch: it runs on the slim base image.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import data, report
from flowship import AwsEcsImage, AwsEcsMachine, Cron, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(cpu_value=512, memory_value=1024, image=AwsEcsImage.base),
    schedules=[Cron("0 5 * * *")],  # daily 05:00 UTC, before Monday's training at 06:00
    tags=["example", "etl"],
    description="Clean raw records into the training dataset CSV.",
)


@task
def extract(n_rows: int, n_features: int, dirty: float, seed: int) -> list[dict[str, str]]:
    return data.raw_records(n_rows, n_features, dirty=dirty, seed=seed)


@task
def transform(rows: list[dict[str, str]], n_features: int, limit: float) -> data.Cleaned:
    return data.clean_records(rows, tuple(f"x{j}" for j in range(n_features)), limit)


@task(cache_policy=NO_CACHE)  # it writes: a cached result would skip the write
def load(dataset: data.Dataset, output: str) -> str:
    return data.write_text(output, data.to_csv(dataset))


@flow
def prepare_dataset(
    n_rows: int = 10_000,
    n_features: int = 4,
    dirty: float = 0.05,
    limit: float = 1000.0,
    seed: int = 0,
    output: str = "./data/training.csv",
) -> dict:
    """Extract, clean and store; returns the rows kept, the rows dropped per reason, and where it wrote."""
    logger = get_run_logger()
    rows = extract(n_rows, n_features, dirty, seed)
    cleaned = transform(rows, n_features, limit)
    written = load(cleaned.dataset, output)
    kept = len(cleaned.dataset)
    logger.info("kept %d of %d rows, wrote %s", kept, len(rows), written)
    create_table_artifact(
        table=data.column_stats(cleaned.dataset), key="prepare-dataset-columns",
        description="Per-column statistics of the clean dataset.",
    )
    create_markdown_artifact(
        markdown="\n\n".join([
            "# Dataset prepared",
            f"Kept **{kept}** of {len(rows)} rows; wrote `{written}`.",
            report.markdown_table([{"dropped because": k, "rows": v} for k, v in cleaned.dropped.items()]),
        ]),
        key="prepare-dataset-summary",
        description="Rows kept and dropped.",
    )
    return {"rows": kept, "dropped": cleaned.dropped, "output": written}
