"""DVC stage `attribute@<study>`: explain the first N test images with every method -> Parquet."""

import logging
import sys

import numpy as np

from xaibench.data.images import load_split
from xaibench.explain.batch import explain_images
from xaibench.figures import heatmap_grid
from xaibench.models import load_model
from xaibench.params import ParamsError, load_params, params_hash
from xaibench.stage_setup import fail, setup_stage
from xaibench.store import attribution_path, write_attributions
from xaibench.tracking import stage_run
from xaibench.training.classifier import to_tensor

log = logging.getLogger("xaibench.attribute")
GRID_IMAGES = 6


def main(study_name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.studies[study_name]
    cfg = study.attribute
    test = load_split(f"data/prepared/{study.dataset}", "test")
    n = min(cfg.n_images, len(test["labels"]))
    pixels = to_tensor(test["images"][:n])
    model = load_model(f"data/models/{study_name}/model.pt")
    digest = params_hash(params.datasets[study.dataset], study.model, study.train, cfg, params.seed)
    out = "data/attributions"
    grid = {}
    with stage_run(study_name, "attribute", cfg.model_dump(), params.datasets[study.dataset].source) as run:
        for method in cfg.methods:
            options = cfg.model_dump().get(method, {})
            rows = explain_images(model, pixels, test["labels"][:n], test["ids"][:n], method, study.model,
                                  params.seed, options, digest)
            write_attributions(attribution_path(out, study_name, study.model, method), rows)
            runtime = float(np.mean(rows["runtime_ms"]))
            log.info("%s: %d maps, %.1f ms per image", method, n, runtime)
            run.log_metrics({f"runtime_ms.{method}": runtime})
            grid[method] = rows["attribution"][:GRID_IMAGES]
        figure = f"{out}/{study_name}/heatmaps.png"
        shown = min(GRID_IMAGES, n)
        heatmap_grid(test["images"][:shown] / 255.0, grid, figure, titles=list(test["ids"][:shown]))
        run.log_artifact(figure)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ParamsError, FileNotFoundError) as error:
        fail(str(error))
