"""DVC stage `evaluate@<study>`: faithfulness metrics per method -> metrics/<study>.json + curves."""

import logging
import sys

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xaibench.atomic import atomic_path, write_json
from xaibench.data.images import load_split
from xaibench.figures import curves_figure
from xaibench.metrics import METRICS
from xaibench.metrics.faithfulness import collect_evidence
from xaibench.models import load_model
from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import fail, setup_stage
from xaibench.store import attribution_path, maps_of, read_attributions
from xaibench.tracking import stage_run
from xaibench.training.classifier import to_tensor

log = logging.getLogger("xaibench.evaluate")


def write_csv(path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def main(study_name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.studies[study_name]
    cfg = study.evaluate
    test = load_split(f"data/prepared/{study.dataset}", "test")
    model = load_model(f"data/models/{study_name}/model.pt")
    results, curves = {}, {}
    fractions = np.linspace(0, 1, cfg.steps + 1)
    fill = model.mean.flatten() if cfg.deletion_fill == "mean" else torch.zeros(3)
    with stage_run(study_name, "evaluate", cfg.model_dump(), params.datasets[study.dataset].source) as run:
        for method in study.attribute.methods:
            frame = read_attributions(attribution_path("data/attributions", study_name, study.model, method))
            pixels = to_tensor(test["images"][: len(frame)])
            assert list(frame.image_id) == [str(i) for i in test["ids"][: len(frame)]], "store/test split mismatch"
            evidence = collect_evidence(model, pixels, maps_of(frame), torch.tensor(frame.target.to_numpy()),
                                        cfg.steps, cfg.insertion_blur_sigma, fill, cfg.batch_size,
                                        progress=lambda it: tqdm(it, desc=method, leave=False, disable=None))
            results[method] = {name: round(float(np.nanmean(metric(evidence))), 6) for name, metric in METRICS.items()}
            curves[method] = {"insertion": evidence.insertion_scores.mean(0),
                              "deletion": evidence.deletion_scores.mean(0)}
            log.info("%s: %s", method, results[method])
            run.log_metrics({f"{k}.{method}": v for k, v in results[method].items()})
        for kind in ("insertion", "deletion"):
            table = pd.DataFrame({"fraction": fractions, **{m: c[kind] for m, c in curves.items()}})
            write_csv(f"metrics/{study_name}_{kind}.csv", table)
        figure = f"data/reports/{study_name}/curves.png"
        curves_figure(fractions, curves, figure)
        run.log_artifact(figure)
    write_json(f"metrics/{study_name}.json", results)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ParamsError, FileNotFoundError) as error:
        fail(str(error))
