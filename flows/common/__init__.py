"""Helpers shared by the example flows.

- `data`: synthetic data, dirty raw records and CSV storage (stdlib + fsspec;
  the CPU ETL flow and the torch flows both use it).
- `report`: markdown tables and the loss plot (matplotlib imported lazily).
- `torchkit`, `conformal`: torch models, training and CV+ intervals; only the
  flows on the `ml` image import them.
- `previews`, `health`: the pure cores of the meta flows (no torch, no network).
"""
