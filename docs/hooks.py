"""MkDocs hooks: the pages generated at build time, from the code and the committed metrics.

* ``results/*.md``: every value of ``metrics/<study>.json`` (and its model, reliability and
  runtime files), the committed run's, rendered as tables; nothing copied by hand.
* ``reference/params.md``: the params schema (pydantic) section by section.
* ``reference/registries.md``: every registry entry with its docstring's first paragraph.
* ``fidelity.md``: the Fidelity tables of ``docs/fidelity.yaml``.

MkDocs imports this file by path (``hooks:`` in mkdocs.yml), so it imports xaibench from
the installed package.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import yaml
from mkdocs.structure.files import File
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"catsdogs": "Cats vs dogs (`catsdogs`)", "senn_cifar10": "SENN on CIFAR-10 (`senn_cifar10`)",
           "ssd_coco": "SSD on COCO (`ssd_coco`)", "imagenet": "ImageNet LIME and SHAP (`imagenet`)",
           "gad": "GAD (`gad`)"}
MAX_DEPTH = 4


# --- results -------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) if len(value) <= 8 else f"{len(value)} values"
    return str(value).replace("|", "\\|")


def _scalar(value) -> bool:
    return not isinstance(value, dict)


def _arrow(name: str) -> str:
    from xaibench.metrics import METRIC_INFO

    base = name.split(":", 1)[0]
    if base in METRIC_INFO:
        return " ↑" if METRIC_INFO[base].higher_is_better else " ↓"
    return ""


def _table(rows: dict) -> list[str]:
    """``{row: {column: scalar}}`` as a Markdown table."""
    columns = list(dict.fromkeys(c for values in rows.values() for c in values))
    lines = ["| | " + " | ".join(f"{_cell(c)}{_arrow(c) if '|' not in c else ''}" for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| **{_cell(name)}** | " + " | ".join(_cell(values.get(c)) for c in columns) + " |")
    return lines + [""]


def render_json(data, level: int = 2) -> list[str]:
    """A metrics JSON tree as Markdown: scalars in a key/value table, a dict of flat dicts
    as one table, anything deeper under a heading per key."""
    if _scalar(data):
        return [_cell(data), ""]
    lines = []
    flat = {k: v for k, v in data.items() if _scalar(v)}
    nested = {k: v for k, v in data.items() if not _scalar(v)}
    if flat:
        lines += ["| | value |", "|---|---|"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in flat.items()] + [""]
    # flat dicts with few keys side by side (methods x metrics); a long one gets its own heading
    tables = {k: v for k, v in nested.items() if all(_scalar(x) for x in v.values()) and len(v) <= 12}
    if len(tables) > 1 or (tables and len(tables) == len(nested)):
        lines += _table(tables)
        nested = {k: v for k, v in nested.items() if k not in tables}
    for key, value in nested.items():
        if level > MAX_DEPTH:
            lines += [f"**{key}**: `{json.dumps(value)[:300]}`", ""]
            continue
        lines += [f"{'#' * level} {key}", ""] + render_json(value, level + 1)
    return lines


def _study_files(study: str) -> list[tuple[str, Path]]:
    metrics = ROOT / "metrics"
    found = [(title, metrics / f"{study}{suffix}.json") for title, suffix in
             (("Scores", ""), ("Model", "_model"), ("Reliability", "_reliability"), ("Runtime", "_runtime"))]
    if study == "gad":
        found += [(f"Model {p.stem}", p) for p in sorted((metrics / "gad").glob("*_model.json"))]
    return [(title, path) for title, path in found if path.exists()]


def results_page(study: str) -> str:
    lines = [f"# Results: {STUDIES[study]}", "",
             "Every value below is read from the committed metrics files of the default run (the "
             "run `dvc.lock` records) when this site is built; the numbers of your own run are in "
             "your `metrics/` and in the report. ↑: higher is better, ↓: lower is better "
             "(as each metric declares). What the study does and how to read it: "
             f"[the study's page](../studies/{ {'senn_cifar10': 'senn', 'ssd_coco': 'detection'}.get(study, study) }.md).",
             ""]
    reliability = ROOT / "metrics" / f"{study}_reliability.json"
    if reliability.exists():
        lines += ["## Reliability verdict", "",
                  "In the report's sentences (`xaibench.report.content.verdict`), read off "
                  f"`{reliability.relative_to(ROOT)}`:", ""] + verdict_lines(json.loads(reliability.read_text()))
    for title, path in _study_files(study):
        lines += [f"## {title}", "", f"`{path.relative_to(ROOT)}`", ""]
        lines += render_json(json.loads(path.read_text()), level=3)
    return "\n".join(lines)


def verdict_lines(reliability: dict) -> list[str]:
    """The report's verdict sentences, per GAD cell where the file is split so."""
    from xaibench.report.content import verdict

    if reliability.get("checked") is False:
        return [reliability.get("reason", "not checked"), ""]
    parts = {"": reliability} if "controls" in reliability or "localisation" in reliability else reliability
    lines = []
    for cell, part in parts.items():
        if cell:
            lines += [f"**{cell}**", ""]
        lines += [f"* {s}" for section in verdict(part).values() for s in section] + [""]
    return lines


def results_index() -> str:
    lines = ["# Results of the default run", "",
             "The committed metrics of `make repro` on the synthetic twins, one page per study, "
             "generated from `metrics/*.json` at build time:", ""]
    lines += [f"* [{title}]({study}.md)" for study, title in STUDIES.items()]
    lines += ["", "The twins are small and their models are trained on 2 CPU cores: a number here says "
              "what the pipeline computes, and the reliability sections say which rankings it can "
              "support. Models trained on another CPU differ a little (float rounding), so a rerun "
              "elsewhere gives close, not identical, numbers.", ""]
    return "\n".join(lines)


# --- params --------------------------------------------------------------------------------

def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type):
        return "null" if annotation is type(None) else annotation.__name__
    return str(annotation).replace("typing.", "")


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (itself, or inside Optional/list/dict/Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _constraints(field) -> str:
    parts = []
    for item in field.metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "length ≥")):
            if getattr(item, name, None) is not None:
                parts.append(f"{sign} {getattr(item, name)}")
    return ", ".join(parts)


def schema_section(model: type[BaseModel], path: str, seen: set) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"### `{path}`", "", f"*{model.__name__}*" + (f": {doc}" if doc else ""), "",
             "| key | type | required / default | constraints |", "|---|---|---|---|"]
    children = []
    for name, field in model.model_fields.items():
        default = "required" if field.is_required() else f"default `{_cell(field.get_default(call_default_factory=True)) if _scalar(field.get_default(call_default_factory=True)) else '{…}'}`"
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {default} | {_constraints(field)} |")
        for child in _models_in(field.annotation):
            children.append((child, f"{path}.{name}"))
    lines.append("")
    for child, child_path in children:
        if (child, child_path) not in seen:
            seen.add((child, child_path))
            lines += schema_section(child, child_path, seen)
    return lines


def params_page() -> str:
    from xaibench.data import DATASETS
    from xaibench.params import Params
    from xaibench.studies import STUDY_KINDS

    lines = ["# Reference: params.yaml", "",
             "Generated from the pydantic schema (`xaibench.params`, each kind's and method's own "
             "schema) when this site is built. Every key is validated before a stage runs; an "
             "unknown key or a bad value stops the run with a message that names the dotted key. "
             "A field with a default may be left out; a required one is given in `params.yaml`.", "",
             "## Top level", ""]
    seen: set = set()
    for name, field in Params.model_fields.items():
        if name == "studies":
            continue
        lines.append(f"* `{name}`: {_type_name(field.annotation)}")
    lines.append("")
    for name in ("datasets", "gad", "reliability", "report", "compute"):
        for model in _models_in(Params.model_fields[name].annotation):
            lines += schema_section(model, name if name != "datasets" else "datasets.<name>", seen)
    lines += ["## `datasets.<name>.synthetic`: each dataset's twin", ""]
    for name, spec in DATASETS.items():
        lines += schema_section(spec.synthetic_params, f"datasets.{name}.synthetic", seen)
    lines += ["## `studies.<name>`: one schema per study kind", "",
              "`kind` picks the schema (and the kind's stages)."]
    for kind, entry in STUDY_KINDS.items():
        if entry.section is None:            # a grid kind's study is its own top-level section (above)
            lines += ["", f"## kind `{kind}`", ""] + schema_section(entry.schema, f"studies.<{kind} study>", seen)
    return "\n".join(lines)


# --- registries ----------------------------------------------------------------------------

def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split()).replace("|", "\\|")


def registries_page() -> str:
    from xaibench.data import DATASETS
    from xaibench.explain import METHODS
    from xaibench.explain.detection import BOX_METHODS
    from xaibench.metrics import METRIC_INFO, METRICS
    from xaibench.models import MODELS
    from xaibench.models.ssd import DETECTORS
    from xaibench.studies import STUDY_KINDS

    lines = ["# Reference: the registries", "",
             "Each family has one registry; adding an entry is one decorated function or one "
             "registration call (the [how-to pages](../how-to/add-a-method.md)). Generated from the "
             "registries and the entries' docstrings when this site is built.", "",
             "## Attribution methods (`xaibench.explain.METHODS`)", "",
             "| name | options | axiom | what it computes |", "|---|---|---|---|"]
    for name, entry in METHODS.items():
        options = f"`{entry.options.__name__}`" if entry.options else "—"
        lines.append(f"| `{name}` | {options} | {entry.axiom or '—'} | {_first_paragraph(entry.explain.__doc__)} |")
    lines += ["", "## Detection methods (`xaibench.explain.detection.BOX_METHODS`)", "",
              "Any method above explains a detection too (`explain_box`); these are the detection "
              "study's own.", "", "| name | what it computes |", "|---|---|"]
    lines += [f"| `{n}` | {_first_paragraph(f.__doc__)} |" for n, f in BOX_METHODS.items()]
    lines += ["", "## Metrics (`xaibench.metrics.METRIC_INFO`)", "",
              "| name | better | from the perturbation evidence | definition |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {'higher' if i.higher_is_better else 'lower'} | {'yes' if n in METRICS else '—'} | "
              f"{i.definition.replace('|', chr(92) + '|')} |" for n, i in METRIC_INFO.items()]
    lines += ["", "## Datasets (`xaibench.data.DATASETS`)", "", "| name | classes | real source |", "|---|---|---|"]
    lines += [f"| `{n}` | {len(s.classes)} | `{s.url or '(a folder of yours)'}` |" for n, s in DATASETS.items()]
    lines += ["", "## Models (`xaibench.models.MODELS`, `xaibench.models.ssd.DETECTORS`)", "",
              "Besides these, any `torchvision:<builder>` or `timm:<name>`.", "",
              "| name | what it builds |", "|---|---|"]
    lines += [f"| `{n}` | {_first_paragraph(b.__doc__)} |" for n, b in {**MODELS, **DETECTORS}.items()]
    lines += ["", "## Study kinds (`xaibench.studies.STUDY_KINDS`)", "", "| kind | reproduces | scored by |", "|---|---|---|"]
    for n, k in STUDY_KINDS.items():
        lines.append(f"| `{n}` | {k.info.title} ({k.info.reproduces}) | {k.scores} |")
    return "\n".join(lines) + "\n"


# --- fidelity ------------------------------------------------------------------------------

def fidelity_page() -> str:
    data = yaml.safe_load((ROOT / "docs" / "fidelity.yaml").read_text())
    lines = ["# Fidelity: where xaibench differs from its sources", "", data["intro"], "",
             "Rendered from `docs/fidelity.yaml`, the one place these entries are written.", ""]
    for group in data["studies"]:
        lines += [f"## {group['study']}", ""]
        if group.get("source"):
            lines += [f"Source: `{group['source']}`", ""]
        lines += ["| where | the source | xaibench | why |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(row[k].replace("|", "\\|") for k in ("where", "source_says", "xaibench", "why"))
                  + " |" for row in group["rows"]]
        lines.append("")
        if group.get("notes"):
            lines += [group["notes"], ""]
    return "\n".join(lines)


# --- the hook ------------------------------------------------------------------------------

def generated_pages() -> dict[str, str]:
    pages = {"results/index.md": results_index(), "reference/params.md": params_page(),
             "reference/registries.md": registries_page(), "fidelity.md": fidelity_page()}
    pages.update({f"results/{study}.md": results_page(study) for study in STUDIES})
    return pages


def on_files(files, config):
    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files
