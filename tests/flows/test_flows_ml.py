"""The example ML flows run to completion on the CPU against a real Prefect server.

Each flow is called in-process with small sizes, which creates real flow and
task runs on the session's Prefect server; the artifacts are read back from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from uuid import UUID

import pytest

torch = pytest.importorskip("torch", reason="the ML example flows need the `ml` extra (torch)")
pytest.importorskip("matplotlib", reason="the ML example flows need the `ml` extra (matplotlib)")

from flows.common import conformal, data  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("drain_prefect")]


def artifacts_of(flow_run_id: UUID) -> dict[str, object]:
    """The artifacts one flow run (and its task runs) published, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def table(artifact) -> list[dict]:
    """A table artifact's rows (the server stores them as a JSON string)."""
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def run(flow, **parameters):
    """Call a flow in-process; returns (its result, its flow run id), failing on a non-Completed state."""
    state = flow(**parameters, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


# --- training --------------------------------------------------------------

SMALL_TRAINING = dict(epochs=3, n_samples=256, n_features=3, batch_size=32, width=8, checkpoint_every=2, seed=7)


def test_training_runs_checkpoints_and_publishes(prefect_api, tmp_path):
    from flows.train import weekly_training

    out, run_id = run(weekly_training, checkpoint_dir=str(tmp_path / "ck"), **SMALL_TRAINING)
    assert out["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert out["final_train_loss"] > 0 and out["final_val_loss"] > 0
    run_dir = tmp_path / "ck" / "weekly-training" / str(run_id)
    assert sorted(p.name for p in run_dir.iterdir()) == ["epoch-0002.pt", "final.pt"]
    from flows.common.torchkit import load_checkpoint

    final = load_checkpoint(str(run_dir / "final.pt"))
    assert final["epoch"] == 3 and len(final["train_loss"]) == 3
    assert math.isclose(final["train_loss"][-1], out["final_train_loss"])

    arts = artifacts_of(run_id)
    assert arts["weekly-training-metrics"].type == "table"
    assert [row["epoch"] for row in table(arts["weekly-training-metrics"])] == [1, 2, 3]
    report = arts["weekly-training-report"]
    assert report.type == "markdown"
    assert "](data:image/png;base64,iVBOR" in report.data  # the PNG signature, base64-encoded


def test_training_is_reproducible_with_a_fixed_seed(prefect_api, tmp_path):
    from flows.common.torchkit import load_checkpoint
    from flows.train import weekly_training

    params = SMALL_TRAINING | {"device": "cpu"}
    first, _ = run(weekly_training, checkpoint_dir=str(tmp_path / "a"), **params)
    second, _ = run(weekly_training, checkpoint_dir=str(tmp_path / "b"), **params)
    other, _ = run(weekly_training, checkpoint_dir=str(tmp_path / "c"), **(params | {"seed": 8}))

    assert first["final_train_loss"] == second["final_train_loss"]
    assert first["final_val_loss"] == second["final_val_loss"]
    a, b = load_checkpoint(first["checkpoint"])["state_dict"], load_checkpoint(second["checkpoint"])["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert other["final_train_loss"] != first["final_train_loss"]


def test_etl_output_feeds_training(prefect_api, tmp_path):
    """The CPU ETL flow and the GPU training flow share `flows.common.data`: one writes what the other reads."""
    from flows.etl import prepare_dataset
    from flows.train import weekly_training

    csv_path = tmp_path / "data" / "training.csv"
    out, run_id = run(prepare_dataset, n_rows=300, n_features=3, dirty=0.2, seed=3, output=str(csv_path))
    assert out["output"] == str(csv_path)
    assert out["rows"] + sum(out["dropped"].values()) == 300
    assert sum(out["dropped"].values()) > 20  # ~20% dirty rows, each caught by one rule
    stored = data.from_csv(csv_path.read_text())
    assert len(stored) == out["rows"] and stored.columns == ("x0", "x1", "x2")

    arts = artifacts_of(run_id)
    assert [row["column"] for row in table(arts["prepare-dataset-columns"])] == ["x0", "x1", "x2", "y"]
    assert f"Kept **{out['rows']}** of 300 rows" in arts["prepare-dataset-summary"].data

    trained, _ = run(weekly_training, data_path=str(csv_path), checkpoint_dir=str(tmp_path / "ck"),
                     **(SMALL_TRAINING | {"epochs": 1}))
    assert load_checkpoint_columns(trained["checkpoint"]) == ["x0", "x1", "x2"]


def load_checkpoint_columns(url: str) -> list[str]:
    from flows.common.torchkit import load_checkpoint

    return load_checkpoint(url)["columns"]


def test_etl_cleaning_rules():
    rows = [
        {"x0": "1.0", "y": "2.0"},
        {"x0": "", "y": "2.0"},
        {"x0": "n/a", "y": "2.0"},
        {"x0": "1e9", "y": "2.0"},
        {"x0": "0.5", "y": "nan"},
    ]
    cleaned = data.clean_records(rows, ("x0",))
    assert cleaned.dataset.features == ((1.0,),) and cleaned.dataset.targets == (2.0,)
    assert cleaned.dropped == {"missing": 1, "not a number": 1, "out of range": 2}


# --- sweep -----------------------------------------------------------------

def test_sweep_maps_trials_and_returns_the_best(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.sweep import hyperparameter_sweep

    best, run_id = run(
        hyperparameter_sweep, learning_rates=[0.001, 0.03], widths=[8, 16], depths=[1],
        epochs=3, n_samples=256, batch_size=32, device="cpu",
    )
    trials_table = table(artifacts_of(run_id)["hyperparameter-sweep-trials"])
    assert len(trials_table) == 4 and [row["rank"] for row in trials_table] == [1, 2, 3, 4]
    assert sorted((row["lr"], row["width"]) for row in trials_table) == [(0.001, 8), (0.001, 16), (0.03, 8), (0.03, 16)]
    assert best["val_loss"] == min(row["val_loss"] for row in trials_table)
    assert {k: best[k] for k in ("lr", "width", "depth")} == {k: trials_table[0][k] for k in ("lr", "width", "depth")}

    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    trials = [t for t in tasks if t.name.startswith("trial-")]
    assert len(trials) == 4 and all("sweep-trial" in t.tags for t in trials)


def test_random_search_draws_distinct_configurations():
    from flows.sweep import configurations

    drawn = configurations("random", [0.1, 0.01, 0.001], [8, 16], [1, 2], n_trials=5, seed=1)
    assert len(drawn) == 5 and len({tuple(sorted(c.items())) for c in drawn}) == 5
    assert drawn == configurations("random", [0.1, 0.01, 0.001], [8, 16], [1, 2], n_trials=5, seed=1)
    with pytest.raises(ValueError, match="strategy"):
        configurations("bayes", [0.1], [8], [1], 1, 0)


# --- Jackknife+ / CV+ ------------------------------------------------------

def test_ranks_are_exact():
    # (1 - 0.1) * 200 is 180.00000000000003 in floating point; the rank is 180.
    assert conformal.ranks(199, 0.1) == (20, 180)
    assert conformal.ranks(9, 0.05) == (0, 10)  # too few points: the interval is infinite


def test_cv_plus_matches_the_definition():
    """The vectorised intervals equal the paper's definition evaluated point by point."""
    gen = torch.Generator().manual_seed(0)
    n, k, m, alpha = 23, 4, 5, 0.2
    fold_of = torch.tensor([i % k for i in range(n)])
    residuals = torch.rand(n, generator=gen, dtype=torch.float64)
    test_predictions = torch.randn(k, m, generator=gen, dtype=torch.float64)
    lower, upper = conformal.cv_plus_intervals(test_predictions, residuals, fold_of, alpha)
    lo_rank, hi_rank = math.floor(alpha * (n + 1)), math.ceil((1 - alpha) * (n + 1))
    for j in range(m):
        lows = sorted(float(test_predictions[fold_of[i], j] - residuals[i]) for i in range(n))
        highs = sorted(float(test_predictions[fold_of[i], j] + residuals[i]) for i in range(n))
        assert float(lower[j]) == lows[lo_rank - 1]
        assert float(upper[j]) == highs[hi_rank - 1]


def test_folds_partition_the_training_points():
    parts = conformal.folds(23, 5, seed=0)
    assert sorted(i for p in parts for i in p) == list(range(23))
    assert {len(p) for p in parts} == {4, 5}


def test_jackknife_plus_covers_fresh_points(prefect_api):
    """Seed 0; 300 training points in 5 folds, 2000 fresh test points, noise N(0, 0.3^2), alpha 0.1.

    CV+ guarantees at least 1 - 2 alpha for any model and gives about 1 - alpha
    in practice; the test asks for at least 88% at the 90% level.
    """
    from flows.jackknife import jackknife_plus

    summary, run_id = run(
        jackknife_plus, n_train=300, n_test=2000, k_folds=5, alpha=0.1, noise=0.3, epochs=15, seed=0, device="cpu",
    )
    assert summary["empirical_coverage"] >= 0.88
    # Informative, not just wide: within 2.5x of the oracle width for a known noise level.
    assert summary["mean_width"] < 2.5 * summary["oracle_width"]

    arts = artifacts_of(run_id)
    (row,) = table(arts["jackknife-plus-coverage"])
    assert row["empirical_coverage"] == summary["empirical_coverage"] and row["n_test"] == 2000
    folds = table(arts["jackknife-plus-folds"])
    assert [f["fold"] for f in folds] == [0, 1, 2, 3, 4] and sum(f["held_out"] for f in folds) == 300


def test_flow_helpers_need_no_torch_for_etl():
    """The ETL flow runs on the base image: nothing it imports may pull in torch."""
    import subprocess
    import sys

    code = "import sys, flows.etl; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
