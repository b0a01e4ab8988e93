"""Rankings across retraining (``reliability.seeds``): a study's model trained with k seeds,
each explained on the same test images and scored by the same metrics, so that a ranking
is read against the spread of retraining and not only against the image bootstrap.

One trained model hides its own variance: the same code on two CPUs retrained every twin
model a little differently, and a ranking that holds for one model may not hold for the
next. The study's own model is the first seed (its evaluate stage's scores are reused);
each further seed ``s`` trains the study anew with ``seed = s`` (the initial weights and the
batches; the explanations and the metrics keep the study's seed, so only the model
changes), then runs the kind's own attribute and evaluate functions in a scratch workspace
(``data/prepared`` and ``data/cues`` linked in), whose outputs are discarded once scored.
Beside the evaluate stage's metrics, every seed gets the localisation scores and the cue
order against the twin's cue masks (:mod:`xaibench.studies.reliability`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xaibench.data.images import load_split
from xaibench.models import load_model
from xaibench.store import attribution_path, maps_of, read_attributions
from xaibench.studies.reliability import (cue_importance, cue_order_rows, localisation, stored_scores,
                                          study_cues)
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


class SeedRun:
    """The stage's MLflow run as the kind's functions see it for one seed: metrics prefixed
    ``seed<s>.`` and held until :meth:`flush` (the stage's working directory, where the
    MLflow store lies, is the scratch one meanwhile), artifacts (figures of a scratch
    workspace) not kept."""

    def __init__(self, run, seed: int):
        self.run, self.prefix, self.held = run, f"seed{seed}.", []

    def log_metrics(self, metrics, step=None):
        self.held.append(({self.prefix + k: v for k, v in metrics.items()}, step))

    def flush(self):
        for metrics, step in self.held:
            self.run.log_metrics(metrics, step=step)
        self.held = []

    def log_artifact(self, path):
        return None

    def log_artifacts(self, folder, artifact_path=None):
        return None


@contextlib.contextmanager
def scratch_workspace(dataset: str):
    """A temporary working directory with the workspace's ``data/prepared/<dataset>`` and
    ``data/cues/<dataset>`` linked in (read only); the stage returns to its own directory
    and the scratch one is removed, whatever happens."""
    home = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="xaibench-seed-"))
    try:
        for part in ("prepared", "cues"):
            source = home / "data" / part / dataset
            if source.exists():
                (scratch / "data" / part).mkdir(parents=True, exist_ok=True)
                (scratch / "data" / part / dataset).symlink_to(source, target_is_directory=True)
        os.chdir(scratch)
        yield scratch
    finally:
        os.chdir(home)
        shutil.rmtree(scratch, ignore_errors=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ground_truth_rows(name: str, study, n: int) -> tuple[list[dict], dict | None]:
    """Localisation and cue-order rows of the first ``n`` maps under
    ``data/attributions/<name>`` against the dataset's cue masks (none on a real source),
    and the measured cue importance."""
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m)).iloc[:n]
              for m in study.attribute.methods}
    first = next(iter(frames.values()))
    ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
    maps = {m: maps_of(f) for m, f in frames.items()}
    cues = study_cues(study.dataset, ids)
    rows, _ = localisation(maps, ids, cues)
    if cues is None:
        return rows, None
    model = load_model(f"data/models/{name}/model.pt")
    test = load_split(f"data/prepared/{study.dataset}", "test", mmap=True)
    drops, importance = cue_importance(model, to_tensor(test["images"][: len(ids)]), targets, cues)
    if importance is not None:
        rows += cue_order_rows(maps, ids, cues, drops)
    return rows, importance


def retrained_scores(name: str, study, params, kind, k: int, n_images: int, run):
    """({seed: per-image scores (method, image_id, metric, value)}, facts: model quality and
    cue importance per seed) for the study's own model (seed ``params.seed``) and ``k − 1``
    retrained ones, on the first ``n_images`` of the study's explained images."""
    seeds = [params.seed + i for i in range(k)]
    model_json = Path(f"metrics/{name}_model.json")
    quality = {seeds[0]: _accuracies(model_json.read_text() if model_json.exists() else "{}")}
    own_rows, importance = ground_truth_rows(name, study, n_images)
    own = pd.concat([stored_scores(name, name), pd.DataFrame(own_rows)], ignore_index=True)
    first_ids = list(dict.fromkeys(pd.DataFrame(own_rows).image_id)) if own_rows else None
    if first_ids is None:
        first_ids = list(dict.fromkeys(own.image_id))[:n_images]
    scores = {seeds[0]: own[own.image_id.isin(first_ids)].reset_index(drop=True)}
    study = study.model_copy(update={"attribute": study.attribute.model_copy(update={"n_images": n_images})})
    importances = {seeds[0]: importance}
    for seed in seeds[1:]:
        replica = f"{name}_seed{seed}"
        log.info("seed %d: training, explaining and scoring %s anew", seed, name)
        seed_run = SeedRun(run, seed)
        with scratch_workspace(study.dataset):
            seed_everything(seed)
            seeded = params.model_copy(update={"seed": seed})
            trained = kind.train(replica, study, seeded, seed_run)
            quality[seed] = {k: v for k, v in trained.items() if k.endswith("_accuracy")}
            seed_everything(params.seed)
            kind.attribute(replica, study, params, seed_run)
            kind.evaluate(replica, study, params, seed_run)
            rows, importances[seed] = ground_truth_rows(replica, study, n_images)
            scores[seed] = pd.concat([stored_scores(replica, replica), pd.DataFrame(rows)], ignore_index=True)
        seed_run.flush()
    return scores, {"models": quality, "cue_importance": importances}


def _accuracies(text: str) -> dict:
    return {k: v for k, v in json.loads(text).items() if k.endswith("_accuracy")}
