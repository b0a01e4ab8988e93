"""DVC stage `train@<study>`: train the study's model -> data/models/<study>/model.pt + metrics."""

import json
from pathlib import Path

import torch

from xaibench.atomic import write_json
from xaibench.data import dataset_classes
from xaibench.data.images import load_split
from xaibench.models import NormalizedClassifier, build_model, save_model
from xaibench.models.external import input_normalisation, is_external
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.tracking import stage_run
from xaibench.training.classifier import accuracy, to_tensor, train_classifier


def main(study_name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(study_name)
    kind = study_kind(study.kind)
    if hasattr(kind, "train"):  # not a classifier: the kind trains (and saves) its own model
        models = {k: v for k, v in study.model_dump().items() if k.endswith("model")}
        with stage_run(study_name, "train", {**models, **study.train.model_dump()},
                       params.datasets[study.dataset].source) as run:
            result = kind.train(study_name, study, params, run)
        write_json(f"metrics/{study_name}_model.json", {**models, **result})
        return
    prepared = Path(f"data/prepared/{study.dataset}")
    splits = {s: load_split(prepared, s) for s in ("train", "val", "test")}
    x = {s: to_tensor(d["images"]) for s, d in splits.items()}
    y = {s: torch.from_numpy(d["labels"]) for s, d in splits.items()}
    stats = json.loads((prepared / "stats.json").read_text())
    num_classes = len(dataset_classes(study.dataset, prepared))
    image_size = int(x["train"].shape[-1])
    weights = getattr(study.train, "weights", "none")
    if is_external(study.model) and weights != "none":  # the weights' own input normalisation
        norm = input_normalisation(study.model)
        mean, std = norm["mean"], norm["std"]
    else:
        mean, std = stats["mean"], stats["std"]
    options = {"weights": weights} if is_external(study.model) else {}
    model = NormalizedClassifier(build_model(study.model, num_classes, image_size, **options), mean, std)
    cfg = study.train
    source = params.datasets[study.dataset].source
    with stage_run(study_name, "train", {"model": study.model, **cfg.model_dump(by_alias=True)}, source) as run:
        if hasattr(kind, "pretrain"):  # e.g. SENN's conceptizer, before the joint loss
            kind.pretrain(model, x["train"], study, params.seed, run)
        train_classifier(model, x["train"], y["train"], x["val"], y["val"], cfg.epochs, cfg.lr, cfg.batch_size,
                         cfg.rotation_degrees, cfg.horizontal_flip, params.seed,
                         on_epoch=lambda epoch, record: run.log_metrics(record, step=epoch),
                         loss_fn=kind.loss_fn(study))
        result = {f"{s}_accuracy": round(accuracy(model, x[s], y[s]), 6) for s in x}
        run.log_metrics(result)
    save_model(f"data/models/{study_name}/model.pt", model, study.model, num_classes, image_size)
    write_json(f"metrics/{study_name}_model.json", {"model": study.model, **result,
                                                    **{f"n_{s}": len(y[s]) for s in y}})


if __name__ == "__main__":
    run_stage(main, "study")
