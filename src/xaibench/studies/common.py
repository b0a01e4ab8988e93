"""Small pieces every study kind needs: loading its model and test images, writing CSVs."""

from __future__ import annotations

import pandas as pd

from xaibench.atomic import atomic_path
from xaibench.data.images import load_split
from xaibench.models import load_model
from xaibench.training.classifier import to_tensor


def load_model_and_test(name: str, study, n: int | None = None):
    """(model, test split dict, pixels [n, 3, H, W] in [0, 1]) for study ``name``."""
    test = load_split(f"data/prepared/{study.dataset}", "test")
    n = len(test["labels"]) if n is None else min(n, len(test["labels"]))
    return load_model(f"data/models/{name}/model.pt"), test, to_tensor(test["images"][:n])


def write_csv(path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
