"""Build the report: read the workspace's metrics, attributions and prepared images, draw
the figures, render the Jinja2 templates -> ``reports/index.html`` + one page per study.

The pages are static and self-contained: every figure is a PNG beside the page, the
style sheet is inline, nothing is fetched (open the file, or
``python -m http.server -d reports``).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xaibench.atomic import atomic_dir
from xaibench.data import dataset_classes
from xaibench.data.images import load_cues, load_split
from xaibench.metrics.complexity import gad_hulls, hull_of_map
from xaibench.report import content
from xaibench.report.figures import gallery_figure, line_chart, rank_figure, runtime_bars, seed_tau_figure
from xaibench.report.studies import study_info
from xaibench.store import maps_of, read_attributions
from xaibench.studies import study_kind
from xaibench.studies.kind import attribution_dir, model_json

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class StudyRef:
    """What the report needs to know of a study: its page name, kind, and cells (the study
    itself, or a grid's ``<architecture>_<dataset>`` cells), each with its dataset."""

    name: str
    kind: str
    cells: dict[str, str]            # cell -> its dataset

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(self.cells.values()))

    @property
    def is_grid(self) -> bool:
        return list(self.cells) != [self.name]

    def json_names(self) -> list[str]:
        return [*(f"metrics/{self.name}{suffix}.json" for suffix in ("", "_reliability", "_runtime")),
                *(model_json(self.name, cell) for cell in self.cells), f"metrics/{self.name}_seeds.json"]


def study_refs(params) -> list[StudyRef]:
    """Every study of ``params`` (validated params.yaml): ``studies``, then the grids (GAD)."""
    return [StudyRef(name, study.kind, study_kind(study.kind).cells(name, study))
            for name, study in params.all_studies().items()]


def base_trees(root: Path, rev: str | None, names: list[str]) -> dict | None:
    """The JSON files ``names`` as they are at git revision ``rev`` (None: no comparison);
    a file missing there maps to None."""
    if not rev:
        return None
    check = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=root,
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise ValueError(f"report base {rev!r} is not a git revision of {root} "
                         f"(git says: {check.stderr.strip()}); give a branch, tag or commit (make report BASE=main)")
    trees = {}
    for name in names:
        shown = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, capture_output=True, text=True)
        trees[name] = json.loads(shown.stdout) if shown.returncode == 0 else None
    return trees


def _class_name(classes, index) -> str:
    return classes[index] if classes is not None and 0 <= index < len(classes) else str(index)


def detection_classes(twin_classes, source: str | None) -> list[str]:
    """A detector's labels are COCO category ids (1-based, 0 = background): the twin's
    categories 1..3, or torchvision's 91-entry COCO list (weights metadata, no download)."""
    if source == "real":
        from torchvision.models.detection import SSD300_VGG16_Weights  # lazy: detection models

        return list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])
    return ["__background__", *(twin_classes or [])]


def gallery(root: Path, ref: StudyRef, cell: str, out: Path, n_images: int, hull_rule: tuple | None) -> list[dict]:
    """One gallery figure per model of ``cell``: the first ``n_images`` explained images
    (boxes, for detection) and every method's map, the cue mask outlined where the twin
    has one; GAD cells show each method's original and GAD map with their convex hulls."""

    folder = root / attribution_dir(ref.name, cell)
    dataset = ref.cells[cell]
    if not folder.is_dir() or not (root / f"data/prepared/{dataset}/test.npz").exists():
        return []
    test = load_split(root / f"data/prepared/{dataset}", "test")
    index = {str(i): k for k, i in enumerate(test["ids"])}
    cue_file = root / f"data/cues/{dataset}/test.npz"
    cues = load_cues(cue_file.parent) if cue_file.exists() else {}
    cue_index = {str(i): k for k, i in enumerate(cues.get("ids", []))}
    classes = list(dataset_classes(dataset, root / f"data/prepared/{dataset}"))
    if ref.kind == "detection":
        classes = detection_classes(classes, (content.read_json(root / f"metrics/data_{dataset}.json") or {}).get("source"))
    figures = []
    has_cues = "cue_masks" in cues
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(model_dir.glob("*.parquet"), key=lambda p: (content.is_control(p.stem), p.stem))
        frames = {p.stem: read_attributions(p) for p in files}
        maps, hulls, first = {}, {}, None
        for method, frame in frames.items():
            if frame.empty or min(int(frame.height.iloc[0]), int(frame.width.iloc[0])) < 4:
                continue                     # not a map over pixels (SENN's concept relevances)
            for variant, part in frame.groupby("variant", sort=False):
                part = part.iloc[:n_images]
                label = method if variant == "original" else f"{method}+{variant}"
                maps[label] = maps_of(part)
                if hull_rule is not None and variant == "original":
                    hulls[label] = np.stack([hull_of_map(m, *hull_rule) for m in maps[label]])
                elif hull_rule is not None and method in maps and len(maps[method]) == len(maps[label]):
                    # a GAD map's hull holds as many pixels as its original's (metrics.complexity.gad_hulls)
                    hulls[label] = np.stack([gad_hulls(o, g, *hull_rule)[1] for o, g in zip(maps[method], maps[label])])
                first = part if first is None else first
        if first is None:
            continue
        rows = [index.get(str(i)) for i in first.image_id]
        keep = [k for k, r in enumerate(rows) if r is not None]
        if not keep:
            continue
        maps = {label: m[keep] for label, m in maps.items() if len(m) >= len(first)}
        hulls = {label: h[keep] for label, h in hulls.items() if label in maps}
        chosen = first.iloc[keep]
        images = test["images"][[rows[k] for k in keep]] / 255.0
        masks = None
        if "cue_masks" in cues:
            masks = np.stack([cues["cue_masks"][cue_index[str(i)]] if str(i) in cue_index
                              else np.zeros(cues["cue_masks"].shape[1:], np.uint8) for i in chosen.image_id])
        boxes = None
        if chosen.box.notna().any():
            boxes = [None if b is None else np.asarray(b, float) for b in chosen.box]
        captions = [f"{i}\ntarget {_class_name(classes, int(t))}, pred {_class_name(classes, int(p))}\np = {q:.2f}"
                    for i, t, p, q in zip(chosen.image_id, chosen.target, chosen.predicted, chosen.probability)]
        file = out / ref.name / f"gallery_{cell}_{model_dir.name}.png"
        gallery_figure(images, maps, file, captions, masks, boxes, hulls or None)
        figures.append({"src": f"{ref.name}/{file.name}", "model": model_dir.name, "cell": cell, "cues": has_cues,
                        "alt": f"{model_dir.name}: {len(keep)} images and the maps of {', '.join(maps)}"})
    return figures


def curve_figures(root: Path, ref: StudyRef, out: Path) -> list[dict]:
    """Every CSV of ``metrics/plots/<study>/`` and ``metrics/plots/reliability/<study>/``
    (the dvc plots data) as a line chart."""

    figures = []
    for folder, prefix in ((root / "metrics/plots" / ref.name, ""),
                           (root / "metrics/plots/reliability" / ref.name, "reliability_")):
        for csv in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
            title = csv.stem.replace("_", " ")
            file = out / ref.name / f"{prefix}{csv.stem}.png"
            line_chart(pd.read_csv(csv), file, title)
            figures.append({"src": f"{ref.name}/{file.name}", "title": title,
                            "kind": "randomisation" if prefix else "curves",
                            "alt": f"{title}: {csv.relative_to(root)}"})
    return figures


def runtime_rows(runtime: dict | None, json_name: str) -> tuple[list[dict], dict]:
    """Rows (``model/method``, or ``cell/model/method`` for GAD; warm mean / std / first
    call ms and, for sampling methods, the mean forward passes as cells) of a
    ``*_runtime.json``, and the warm means by row name."""
    rows, means = [], {}

    def walk(node, path):
        if "runtime_ms_mean" in node:
            label = "/".join(path)
            mean = content.number(node["runtime_ms_mean"])
            if mean is not None:                 # an undefined mean has no bar
                means[label] = mean
            rows.append({"name": label, "n": node.get("n"),
                         "cells": [content.Cell(node.get(k), json_name, [*path, k])
                                   for k in ("runtime_ms_mean", "runtime_ms_std", "runtime_ms_cold", "samples_mean")]})
            return
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, [*path, key])

    walk(runtime or {}, [])
    return rows, means


def study_page(root: Path, ref: StudyRef, out: Path, params, base: dict | None, n_gallery: int) -> dict:
    """Everything the study template shows for ``ref`` (figures written under out/<study>/)."""

    info = study_info(ref.kind)
    study = params.study(ref.name)
    if not ref.is_grid:
        dataset = params.datasets.get(study.dataset)
        try:
            classes = list(dataset_classes(study.dataset, root / f"data/prepared/{study.dataset}"))
        except (FileNotFoundError, KeyError):
            classes = None
        info = study_info(ref.kind, study, dataset, classes)
    metrics_name, reliability_name, runtime_name = ref.json_names()[:3]
    reliability = content.read_json(root / reliability_name)
    missing = []
    if reliability is not None and reliability.get("checked") is False:   # not in reliability.studies
        missing.append(f"{reliability_name}: {reliability.get('reason', 'not checked')}.")
        reliability = None
    elif reliability is None:
        checked = params.reliability is not None and ref.name in params.reliability.studies
        stage = f"{ref.name}_reliability" if ref.is_grid else f"reliability@{ref.name}"
        missing.append(f"{reliability_name} is missing, so this page has no metric table with intervals and no "
                       f"reliability verdict: " + (f"run its stage ({stage}: dvc repro {stage})." if checked else
                                                   f"add {ref.name} to reliability.studies in params.yaml and run "
                                                   f"dvc repro."))
    sections = []
    if reliability:
        parts = {cell: reliability[cell] for cell in ref.cells if cell in reliability} if ref.is_grid \
            else {"": reliability}
        for cell, part in parts.items():
            prefix = (cell,) if cell else ()
            figure = None
            if (part.get("ranking") or {}).get("order"):
                figure = f"{ref.name}/ranking{'_' + cell if cell else ''}.png"
                rank_figure(part["ranking"], out / figure)
            sections.append(content.Section(cell, content.metric_table(part, reliability_name, base, prefix),
                                            content.verdict(part), figure))
    models = []
    for cell in ref.cells:
        model_name = model_json(ref.name, cell)
        facts = content.model_facts(content.read_json(root / model_name), model_name, base)
        models.append({"cell": cell if ref.is_grid else "", "facts": facts})
    hull_rule = ((study.evaluate.hull_fraction, study.evaluate.hull_threshold)   # a study scored by hulls draws them
                 if hasattr(study.evaluate, "hull_fraction") else None)
    galleries = [g for cell in ref.cells for g in gallery(root, ref, cell, out, n_gallery, hull_rule)]
    runtime_table, means = runtime_rows(content.read_json(root / runtime_name), runtime_name)
    runtime_figure = None
    if means:
        runtime_bars(means, out / ref.name / "runtimes.png")
        runtime_figure = f"{ref.name}/runtimes.png"
    seeds_name = f"metrics/{ref.name}_seeds.json"
    seeds = content.seed_table(content.read_json(root / seeds_name), seeds_name, base)
    seed_figure = None
    if seeds:
        seed_figure = f"{ref.name}/seeds.png"
        seed_tau_figure(content.read_json(root / seeds_name), out / seed_figure)
    study_json = content.read_json(root / metrics_name)
    sources = [{"name": ref.datasets[k], "source": (content.read_json(root / f"metrics/data_{d}.json") or {}).get(
        "source", "unknown")} for k, d in enumerate(ref.datasets)]
    if not study_json:
        missing.append(f"{metrics_name} is missing: run the study's evaluate stage (dvc repro).")
    return {"name": ref.name, "kind": ref.kind, "info": info, "datasets": sources, "models": models, "missing": missing,
            "sections": sections, "galleries": galleries, "curves": curve_figures(root, ref, out),
            "runtime_rows": runtime_table, "runtime_figure": runtime_figure, "runtime_json": runtime_name,
            "study_table": content.flat_table(study_json, metrics_name, base) if study_json else None,
            "axiom_rows": content.axiom_rows(study_json, metrics_name),
            "metrics_json": metrics_name, "reliability_json": reliability_name if reliability else None,
            "headline": content.headline(sections[0].table) if sections else [],
            "hulls": hull_rule is not None, "seeds": seeds, "seed_figure": seed_figure,
            "ranking": content.ranking_sentence((next(iter(parts.values()), {}) if reliability else {}).get("ranking"))}


def render(template: str, **context) -> str:
    import jinja2  # lazy: Jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(template).render(**context)


def build_report(root: str | Path, out: str | Path, params, base: str | None = None, n_gallery: int = 6) -> list[str]:
    """Write the report folder ``out`` (replaced as a whole, atomically); returns the page names."""
    root, out = Path(root), Path(out)
    refs = study_refs(params)
    trees = base_trees(root, base, [n for ref in refs for n in ref.json_names()])
    present = [ref for ref in refs if (root / ref.json_names()[0]).exists()]
    for ref in refs:
        if ref not in present:
            log.warning("%s: %s missing, not in the report (run its stages first)", ref.name, ref.json_names()[0])
    nav = [ref.name for ref in present]
    pages = []
    with atomic_dir(out) as tmp:
        for ref in present:
            log.info("report page: %s", ref.name)
            page = study_page(root, ref, tmp, params, trees, n_gallery)
            (tmp / f"{ref.name}.html").write_text(render("study.html.j2", page=page, base=base, nav=nav,
                                                         current=ref.name))
            pages.append(page)
        (tmp / "index.html").write_text(render("index.html.j2", pages=pages, base=base, nav=nav, current=None))
    return [p["name"] for p in pages]
