"""A small torch regression model and a reproducible training loop.

Only flows on the `ml` image import this module. Reproducibility does not rest
on torch's global RNG: every trial owns a `torch.Generator` for its initial
weights and its batch order, so trials running in parallel threads (the sweep,
the CV+ folds) cannot disturb each other, and the same seed gives the same
weights on the CPU and (up to floating point) on a GPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# cuBLAS needs this before it starts to give deterministic results.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from flows.common.data import Dataset  # noqa: E402

# Deterministic kernels everywhere; warn_only keeps an op without a
# deterministic implementation from failing a weekly job (it logs instead).
torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(prefer: str = "auto") -> torch.device:
    """`auto`: the GPU when torch sees one, else the CPU; or exactly `cpu`/`cuda`."""
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no GPU on this machine")
    return torch.device(prefer)


def tensors(dataset: Dataset, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(dataset.features, dtype=torch.float32, device=device)
    y = torch.tensor(dataset.targets, dtype=torch.float32, device=device).unsqueeze(1)
    return x, y


class Mlp(nn.Sequential):
    """`depth` hidden layers of `width` units with tanh (smooth targets, smooth model)."""

    def __init__(self, n_features: int, width: int = 32, depth: int = 2):
        layers: list[nn.Module] = []
        size = n_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.Tanh()]
            size = width
        layers.append(nn.Linear(size, 1))
        super().__init__(*layers)

    def reset(self, generator: torch.Generator) -> Mlp:
        # nn.Linear's own default, drawn from our generator instead of the global one.
        for layer in self:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        return self


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-2
    width: int = 32
    depth: int = 2
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class FitResult:
    model: Mlp
    train_loss: list[float] = field(default_factory=list)  # per epoch, mean over batches
    val_loss: list[float] = field(default_factory=list)  # per epoch; empty without validation data
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def fit(
    x: torch.Tensor,
    y: torch.Tensor,
    config: FitConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: Callable[[int, FitResult], None] | None = None,
) -> FitResult:
    """Train an `Mlp` on (x, y) with Adam and MSE; the same config and data give the same model."""
    generator = torch.Generator().manual_seed(config.seed)
    model = Mlp(x.shape[1], config.width, config.depth).reset(generator).to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.MSELoss()
    result = FitResult(model)
    n = x.shape[0]
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(x.device)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        result.samples += n
        result.train_loss.append(total / n)
        if val is not None:
            result.val_loss.append(evaluate(model, *val))
        if on_epoch is not None:
            on_epoch(epoch, result)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    result.seconds = time.perf_counter() - started
    return result


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(x).squeeze(1)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(nn.functional.mse_loss(predict(model, x), y.squeeze(1)))


def save_checkpoint(url: str, model: nn.Module, **meta: object) -> str:
    """torch.save the weights (moved to the CPU) and `meta` to a path or fsspec URL."""
    from flows.common.data import open_for_write

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with open_for_write(url, "wb") as f:
        torch.save({"state_dict": state, **meta}, f)
    return url


def load_checkpoint(url: str) -> dict:
    import fsspec

    with fsspec.open(url, "rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)
