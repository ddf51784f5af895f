"""Datasets the example flows make, clean, store and read back.

Standard library plus fsspec (a Prefect dependency), so the CPU ETL flow on
the slim `base` image can use it; torch flows turn a `Dataset` into tensors.
Storage locations are local paths or any fsspec URL (`s3://bucket/key` needs
`s3fs` in the image).
"""

from __future__ import annotations

import csv
import io
import math
import random
import statistics
from dataclasses import dataclass

TARGET = "y"


@dataclass(frozen=True)
class Dataset:
    """Rows of float features and one float target per row."""

    columns: tuple[str, ...]
    features: tuple[tuple[float, ...], ...]
    targets: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, indices: list[int] | range) -> Dataset:
        return Dataset(self.columns, tuple(self.features[i] for i in indices), tuple(self.targets[i] for i in indices))


def split(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A reproducible (train, validation) split; `val_fraction` of the rows, rounded down, validate."""
    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    n_val = int(len(order) * val_fraction)
    return dataset.take(order[n_val:]), dataset.take(order[:n_val])


def truth(x: tuple[float, ...] | list[float]) -> float:
    """The noiseless target: smooth, non-linear in the first features, linear in the rest."""
    value = math.sin(2.0 * x[0])
    if len(x) > 1:
        value += 0.5 * x[1] * x[1]
    for j, v in enumerate(x[2:], start=2):
        value += v / j
    return value


def synthetic_regression(n: int, n_features: int = 4, noise: float = 0.3, seed: int = 0) -> Dataset:
    """`n` rows of x ~ U(-2, 2)^d and y = truth(x) + N(0, noise^2), reproducible from `seed`."""
    if n < 1 or n_features < 1:
        raise ValueError(f"n={n} and n_features={n_features} must both be at least 1")
    rng = random.Random(seed)
    features = tuple(tuple(rng.uniform(-2.0, 2.0) for _ in range(n_features)) for _ in range(n))
    targets = tuple(truth(x) + rng.gauss(0.0, noise) for x in features)
    return Dataset(tuple(f"x{j}" for j in range(n_features)), features, targets)


def raw_records(n: int, n_features: int = 4, noise: float = 0.3, dirty: float = 0.05, seed: int = 0) -> list[dict[str, str]]:
    """What an upstream system hands the ETL: strings, with a `dirty` share of broken rows
    (an empty field, a non-number, or an outlier a sensor glitch would produce)."""
    clean = synthetic_regression(n, n_features, noise, seed)
    rng = random.Random(seed + 1)
    rows = []
    for x, y in zip(clean.features, clean.targets, strict=True):
        row = {name: repr(v) for name, v in zip(clean.columns, x, strict=True)} | {TARGET: repr(y)}
        if rng.random() < dirty:
            column = rng.choice([*clean.columns, TARGET])
            row[column] = rng.choice(["", "n/a", "1e9"])
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Cleaned:
    dataset: Dataset
    dropped: dict[str, int]  # reason -> rows dropped for it


def clean_records(rows: list[dict[str, str]], columns: tuple[str, ...], limit: float = 1e3) -> Cleaned:
    """Parse rows into a Dataset, dropping rows with missing, non-numeric or absurd values."""
    features, targets = [], []
    dropped = {"missing": 0, "not a number": 0, "out of range": 0}
    for row in rows:
        values = [row.get(c, "") for c in (*columns, TARGET)]
        if any(v == "" for v in values):
            dropped["missing"] += 1
            continue
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            dropped["not a number"] += 1
            continue
        if any(not math.isfinite(v) or abs(v) > limit for v in numbers):
            dropped["out of range"] += 1
            continue
        features.append(tuple(numbers[:-1]))
        targets.append(numbers[-1])
    return Cleaned(Dataset(columns, tuple(features), tuple(targets)), dropped)


def column_stats(dataset: Dataset) -> list[dict[str, float | str]]:
    """Mean, standard deviation, min and max of every column (features, then target)."""
    out = []
    columns = [[row[j] for row in dataset.features] for j in range(len(dataset.columns))]
    for name, values in [*zip(dataset.columns, columns, strict=True), (TARGET, list(dataset.targets))]:
        out.append({
            "column": name,
            "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.pstdev(values), 4),
            "min": round(min(values), 4),
            "max": round(max(values), 4),
        })
    return out


def to_csv(dataset: Dataset) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*dataset.columns, TARGET])
    for x, y in zip(dataset.features, dataset.targets, strict=True):
        writer.writerow([*(repr(v) for v in x), repr(y)])
    return buffer.getvalue()


def from_csv(text: str) -> Dataset:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[-1] != TARGET:
        raise ValueError(f"a dataset CSV has feature columns then {TARGET!r}; got header {header!r}")
    features, targets = [], []
    for row in reader:
        numbers = [float(v) for v in row]
        features.append(tuple(numbers[:-1]))
        targets.append(numbers[-1])
    return Dataset(tuple(header[:-1]), tuple(features), tuple(targets))


def open_for_write(url: str, mode: str = "w"):
    """Open a local path or fsspec URL for writing; local folders are created first."""
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    fs, path = url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(fs._parent(path), exist_ok=True)
    return fs.open(path, mode)


def write_text(url: str, text: str) -> str:
    """Write `text` to a local path or fsspec URL; returns the URL."""
    with open_for_write(url) as f:
        f.write(text)
    return url


def read_text(url: str) -> str:
    import fsspec

    with fsspec.open(url, "r") as f:
        return f.read()


def join(base: str, *parts: str) -> str:
    """Join a storage location (path or URL) and relative parts with '/'."""
    return "/".join([base.rstrip("/"), *parts])
