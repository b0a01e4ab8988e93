"""What a report page shows, computed from the metrics JSON files (pure functions, no I/O
but :func:`read_json`).

Every number a page prints is a :class:`Cell` that remembers the JSON file and the key
path it was read from (``data-json`` / ``data-key`` in the HTML), so a test can check each
printed number against its source, and a comparison with another revision can look the
same key up there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from xaibench.metrics.reliability import metric_definition

CONTROLS = ("random", "edge")


UNDEFINED = "n/a"   # how a page prints a value that is undefined on this data (null / NaN in the JSON)


class ReportInputError(ValueError):
    """A metrics file the report reads is not valid JSON (the message names the file)."""


def read_json(path: str | Path) -> dict | None:
    """The parsed JSON file ``path``; None where it does not exist. Malformed JSON raises
    :class:`ReportInputError` naming the file and the stage that writes it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportInputError(f"{path}: not valid JSON ({error}); it is an output of the pipeline: "
                               f"rerun the stage that writes it (dvc repro --force <stage>), or delete it "
                               f"and run dvc repro") from None


def is_undefined(value) -> bool:
    """None, NaN or ±inf: a metric with no value on this data (e.g. a share of relevance
    where a map has no positive relevance, a correlation of a constant curve)."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def number(value) -> float | None:
    """``value`` as a float where it is a defined number (bools and strings are not); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or is_undefined(value):
        return None
    return float(value)


def fmt(value) -> str:
    """Three significant digits (``0.225``, ``44.9``, ``0.00124``), whole numbers from 1000
    on (``1028``, not ``1.03e+03``); ``n/a`` (:data:`UNDEFINED`) for a null or NaN value:
    undefined on this data. The browser test formats the JSON values with this same
    function."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_undefined(value) or not isinstance(value, (int, float)):
        return UNDEFINED
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def lookup(tree, keys):
    """``tree[k0][k1]...``; None where a key is missing."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


@dataclass
class Cell:
    """One printed number and where it comes from."""

    value: float | None
    json: str                        # file the value was read from, relative to the workspace
    key: list[str]                   # key path inside that file
    interval: tuple[float, float] | None = None
    best: bool = False
    greyed: bool = False             # not separated from the controls
    uninformative: str = ""          # why the whole metric cannot rank the methods here (its column is greyed)
    base: float | None = None        # the same key at the base revision
    has_base: bool = False

    def __post_init__(self):
        self.value = number(self.value)  # null, NaN: undefined here (printed n/a, never compared)
        if self.interval is not None and any(number(v) is None for v in self.interval):
            self.interval = None

    @property
    def text(self) -> str:
        return fmt(self.value)

    @property
    def interval_text(self) -> str:
        return f"[{fmt(self.interval[0])}, {fmt(self.interval[1])}]" if self.interval else ""

    @property
    def key_json(self) -> str:
        return json.dumps(self.key)

    @property
    def delta(self) -> float | None:
        if self.value is None or self.base is None:
            return None
        return self.value - self.base

    @property
    def delta_text(self) -> str:
        if not self.has_base:
            return ""
        if self.base is None:
            return "new"
        if self.value is None:
            return f"undefined now (was {fmt(self.base)})"
        return f"{self.delta:+.3g}" if self.delta else "±0"

    @property
    def changed(self) -> bool:
        """The change against the base exceeds half the width of the current interval
        (the interval's half-width is the resolution the bootstrap gives); without an
        interval, any change."""
        delta = self.delta
        if delta is None or not delta:
            return False
        if self.interval is None:
            return True
        return abs(delta) > (self.interval[1] - self.interval[0]) / 2


def with_base(cell: Cell, base_trees: dict | None) -> Cell:
    """Fill ``cell.base`` from the base revision's copy of its JSON file (when a base is given)."""
    if base_trees is not None:
        cell.has_base = True
        cell.base = number(lookup(base_trees.get(cell.json), cell.key))
    return cell


def _group(method: str) -> str:
    return method.rsplit("/", 1)[0] if "/" in method else ""


def is_control(method: str) -> bool:
    return method.rsplit("/", 1)[-1] in CONTROLS


def metric_table(reliability: dict, json_name: str, base_trees: dict | None = None,
                 key_prefix: tuple[str, ...] = ()) -> dict:
    """Rows = methods (controls last), columns = the metrics of ``intervals.by_metric``:
    each cell the mean with its bootstrap interval, ``best`` for the best non-control
    value of its model group by the metric's direction (ties all marked), ``greyed`` when
    the reliability report flags the method as not separated from the controls, and the
    whole column ``uninformative`` (with the report's reasons) when the metric cannot rank
    the methods on this data."""
    by_metric = reliability["intervals"]["by_metric"]
    directions = reliability.get("direction", {})
    flagged = {m: set(reliability.get("controls", {}).get(m, {}).get("flagged", [])) for m in by_metric}
    why = {m: "uninformative here: " + "; ".join(r) for m, r in (reliability.get("uninformative") or {}).items()}
    methods = sorted({m for values in by_metric.values() for m in values}, key=lambda m: (is_control(m), _group(m), m))
    metrics = [{"name": m, "direction": directions.get(m, ""), "definition": metric_definition(m),
                "uninformative": why.get(m, "")} for m in by_metric]
    best = {}
    for metric, values in by_metric.items():
        sign = 1 if directions.get(metric, "higher") == "higher" else -1
        for group in {_group(m) for m in values}:
            means = {m: number(v.get("mean")) for m, v in values.items() if _group(m) == group and not is_control(m)}
            candidates = {m: v for m, v in means.items() if v is not None}
            if candidates:
                top = max(sign * v for v in candidates.values())
                best.update({(metric, m): True for m, v in candidates.items() if sign * v == top})
    rows = []
    for method in methods:
        cells = []
        for metric in by_metric:
            entry = by_metric[metric].get(method)
            key = [*key_prefix, "intervals", "by_metric", metric, method, "mean"]
            if entry is None:
                cells.append(Cell(None, json_name, key))
                continue
            interval = tuple(entry["interval"]) if isinstance(entry.get("interval"), list) \
                and len(entry["interval"]) == 2 else None
            cells.append(with_base(Cell(entry.get("mean"), json_name, key, interval, best.get((metric, method), False),
                                        method in flagged[metric], why.get(metric, "")), base_trees))
        rows.append({"method": method, "control": is_control(method), "cells": cells})
    level, n_resamples = number(reliability.get("level")), number(reliability.get("n_resamples"))
    return {"metrics": metrics, "rows": rows, "level": level, "n_images": fmt(reliability.get("n_images")),
            "n_resamples": reliability.get("n_resamples"),
            "interval_legend": (f"{round(level * 100)} % " if level is not None else "")
            + f"paired bootstrap interval ({fmt(n_resamples)} resamples)"}


def flat_table(tree: dict, json_name: str, base_trees: dict | None = None) -> dict:
    """A study's own metrics JSON as a table: every dict whose values include numbers is a
    row (its key path joined by `` / ``), its numeric entries the columns (a null entry is
    a number undefined on this data: its column stays, printed n/a)."""
    rows, columns = [], []

    def walk(node, path):
        numbers = {k: v for k, v in node.items()
                   if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
        if numbers:
            rows.append((path, numbers))
            columns.extend(k for k in numbers if k not in columns)
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, [*path, k])

    walk(tree, [])
    table_rows = [{"name": " / ".join(path) or "(all)",
                   "cells": [with_base(Cell(numbers[c], json_name, [*path, c]), base_trees) if c in numbers else None
                             for c in columns]} for path, numbers in rows]
    return {"columns": columns, "rows": table_rows}


def axiom_rows(study_json: dict | None, json_name: str) -> list[dict]:
    """The axiom gauge of a study's methods (``axioms`` in its metrics JSON: median relative
    error of each map's sum from its method's axiom, :mod:`xaibench.explain.axioms`): one
    row per method, ``flagged`` when the median is above the axiom's tolerance."""
    rows = []
    for method, gauge in ((study_json or {}).get("axioms") or {}).items():
        if not isinstance(gauge, dict):
            continue
        median, tolerance = number(gauge.get("median_error")), number(gauge.get("tolerance"))
        flagged = median is not None and tolerance is not None and median > tolerance
        rows.append({"method": method, "axiom": gauge.get("axiom", ""),
                     "median": Cell(gauge.get("median_error"), json_name, ["axioms", method, "median_error"]),
                     "max": Cell(gauge.get("max_error"), json_name, ["axioms", method, "max_error"]),
                     "tolerance": fmt(tolerance), "flagged": flagged,
                     "note": (f"above its tolerance: Σ map is {fmt(median)} (relative) from what {gauge.get('axiom')} "
                              f"requires; the maps do not add up as the method defines them" if flagged else
                              "undefined on these maps" if median is None else "within tolerance")})
    return rows


def model_facts(model_json: dict | None, json_name: str, base_trees: dict | None = None) -> list[tuple[str, Cell]]:
    """The model's quality numbers (every key with ``accuracy`` or ``map`` in its name)."""
    if not model_json:
        return []
    return [(key, with_base(Cell(value, json_name, [key]), base_trees)) for key, value in model_json.items()
            if (value is None or isinstance(value, (int, float))) and ("accuracy" in key or "map" in key)]


def per_model(section: dict | None, marker: str) -> dict[str, dict]:
    """``{"": section}``, or ``{model: part}`` where the section is split by model (ImageNet:
    one localisation / randomisation / saturation part per architecture)."""
    if not section:
        return {}
    if marker in section:
        return {"": section}
    return {model: part for model, part in section.items() if isinstance(part, dict) and marker in part}


def _names(values) -> str:
    return ", ".join(values) if values else "none"


def ranking_sentence(ranking: dict | None) -> str:
    """The ranking across metrics in one sentence: the methods by median rank, each with its
    bootstrap interval, ``≈`` between neighbours the resamples cannot order (a tie) and
    ``>`` where they can; the ranks per metric are left to the figure. Empty where the
    report has no ranking."""
    if not ranking or not ranking.get("order"):
        return ""
    tied = {frozenset(pair) for pair in ranking.get("tied", [])}
    methods = ranking["methods"]
    parts = []
    for k, m in enumerate(ranking["order"]):
        low, high = methods[m].get("interval") or [None, None]
        if k:
            parts.append("≈" if frozenset((ranking["order"][k - 1], m)) in tied else ">")
        parts.append(f"{m} {fmt(methods[m].get('median_rank'))} [{fmt(low)}, {fmt(high)}]")
    n_ties = len(tied)
    return (f"median rank over {len(ranking['metrics'])} metrics (1 = best; ≈: tied, the resampled images "
            f"cannot order them): " + " ".join(parts)
            + (f"; {n_ties} pair(s) tied in all." if n_ties else "; every pair ordered."))


def verdict(reliability: dict) -> dict[str, list[str]]:
    """The reliability verdict in sentences, one list per section, every number read off
    the report (nothing typed in)."""
    out = {"ranking": [], "uninformative": [], "controls": [], "localisation": [], "randomisation": [],
           "agreement": [], "fills": [], "saturation": []}
    sentence = ranking_sentence(reliability.get("ranking"))
    if sentence:
        out["ranking"].append(sentence)
    left_out = (reliability.get("ranking") or {}).get("left_out") or []
    for metric, reasons in (reliability.get("uninformative") or {}).items():
        out["uninformative"].append(f"{metric}: " + "; ".join(reasons)
                                    + (" (left out of the ranking)." if metric in left_out else "."))
    controls = reliability.get("controls", {})
    separating = [m for m, c in controls.items() if not c.get("flagged") and any(s for s in c.get("separated", {}).values())]
    if controls:
        out["controls"].append(f"Separate every method from the controls: {_names(separating)}.")
        for metric, c in controls.items():
            if c.get("flagged"):
                out["controls"].append(f"{metric} does not separate {_names(c['flagged'])} from the controls.")
    for model, loc in per_model(reliability.get("localisation"), "available").items():
        prefix = f"{model}: " if model else ""
        if not loc.get("available"):
            out["localisation"].append(prefix + loc.get("reason", "no ground truth"))
            continue
        flip = lookup(loc, ["cue_flip", "cue_flip_rate"])
        means = loc.get("means", {})
        masses = {m: number(v["relevance_mass"]) for m, v in means.items() if "relevance_mass" in v}
        mass = sorted(((v, m) for m, v in masses.items() if v is not None), reverse=True)
        undefined = sorted(m for m, v in masses.items() if v is None)
        ranking = " > ".join(f"{m} {fmt(v)}" for v, m in mass) or "undefined for every method"
        text = f"{prefix}the cue covers {fmt(loc.get('chance_level'))} of the image (chance level)"
        if flip is not None:
            text += f"; {fmt(flip)} of test predictions follow the swapped cue"
        out["localisation"].append(text + f". Relevance mass: {ranking}.")
        if undefined:
            out["localisation"].append(prefix + f"relevance mass is undefined ({UNDEFINED}) for {_names(undefined)}: "
                                       "no positive relevance in their maps of the explained images; they are "
                                       "left out of the ranking.")
        importance = loc.get("cue_importance")
        if importance:
            drops = ", ".join(f"{c} {fmt(v.get('mean_drop'))}" for c, v in importance.get("cues", {}).items())
            out["localisation"].append(
                prefix + f"measured cue importance (mean drop of the target probability when the cue is drawn "
                f"plain): {drops}; {fmt(importance.get('n_images_ordered'))} of {fmt(importance.get('n_images'))} "
                "images order the two cues (cue_order scores a method on them).")
        controls_mass = [v for v, m in mass if is_control(m)]
        below = [m for v, m in mass if not is_control(m) and controls_mass and v <= max(controls_mass)]
        if controls_mass and len(controls_mass) < len(mass):
            out["localisation"].append(prefix + ("the controls rank last on relevance mass." if not below else
                                                 f"{_names(below)} rank at or below a control on relevance mass."))
    for model, rand in per_model(reliability.get("randomisation"), "methods").items():
        prefix = f"{model}: " if model else ""
        finals = {m: (v or {}).get("final_spearman") for m, v in rand["methods"].items()}
        passed = [f"{m} ({fmt(finals.get(m))})" for m in rand.get("passed", [])]
        failed = [f"{m} ({fmt(finals.get(m))})" for m in rand.get("failed", [])]
        undecided = [m for m in finals if m not in rand.get("passed", []) and m not in rand.get("failed", [])
                     and number(finals[m]) is None]
        out["randomisation"].append(
            f"{prefix}pass: {_names(passed)}; fail (Spearman with the fully random model ≥ "
            f"{fmt(rand.get('fail_threshold'))}): {_names(failed)}"
            + (f"; not checked: {_names(rand['not_checked'])}" if rand.get("not_checked") else "")
            + (f"; undefined ({UNDEFINED}: a constant map, no rank correlation): {_names(undecided)}"
               if undecided else "") + ".")
    agreement = {pair: number(tau) for pair, tau in (reliability.get("agreement") or {}).items()
                 if number(tau) is not None and ":" not in pair}
    undefined_pairs = [pair for pair, tau in (reliability.get("agreement") or {}).items()
                       if number(tau) is None and ":" not in pair]
    if agreement:
        low, high = min(agreement, key=agreement.get), max(agreement, key=agreement.get)
        out["agreement"].append(
            f"Kendall's τ between the method rankings of {len(agreement)} metric pairs ranges from "
            f"{fmt(agreement[low])} ({low.replace('|', ' vs ')}) to {fmt(agreement[high])} ({high.replace('|', ' vs ')}).")
    if undefined_pairs:
        out["agreement"].append(f"τ is undefined ({UNDEFINED}: a metric ties every method, or is undefined for "
                                f"some) for {len(undefined_pairs)} metric pair(s): "
                                + ", ".join(p.replace("|", " vs ") for p in undefined_pairs) + ".")
    fills = lookup(reliability, ["fills", "agreement"]) or {}
    if fills:
        out["fills"].append("DAUC rankings under the deletion fills agree at τ = "
                            + ", ".join(f"{fmt(t)} ({p.replace('DAUC:', '').replace('|', ' vs ')})"
                                        for p, t in fills.items()) + ".")
    for model, sat in per_model(reliability.get("saturation"), "insertion_start").items():
        prefix = f"{model}: " if model else ""
        out["saturation"].append(
            f"{prefix}the insertion start (blurred image) keeps {fmt(sat.get('insertion_start_retains'))} of the "
            f"evidence (p = {fmt(sat.get('insertion_start'))} against {fmt(sat.get('clean'))} on the image, "
            f"chance {fmt(sat.get('chance'))})"
            + ("; it still carries the class, so IAUC measures little." if sat.get("insertion_start_carries_class")
               else "."))
    return out


def seed_table(seeds: dict | None, json_name: str, base_trees: dict | None = None) -> dict | None:
    """The retraining section of a study page from ``metrics/<study>_seeds.json``: per
    metric Kendall's τ between seeds (mean, min) and per method its range of means over
    the seeds, the image-bootstrap half-width under one model and the share of retrained
    models in which it keeps its rank; the model quality per seed; the verdict sentences.
    None where the study was not retrained."""
    if not seeds or not seeds.get("checked"):
        return None
    by_metric = seeds.get("by_metric", {})
    methods = sorted({m for part in by_metric.values() for m in part.get("means", {})},
                     key=lambda m: (is_control(m), m))
    rows = []
    for metric, part in by_metric.items():
        if ":" in metric:
            continue
        cells = []
        for method in methods:
            low, high = (part.get("seed_range") or {}).get(method) or [None, None]
            cells.append({"range": f"{fmt(low)}–{fmt(high)}", "halfwidth": fmt((part.get("bootstrap_halfwidth")
                                                                                 or {}).get(method)),
                          "kept": fmt((part.get("rank_kept") or {}).get(method))})
        taus = part.get("kendall_tau") or {}
        rows.append({"metric": metric, "definition": metric_definition(metric), "survives": part.get("survives"),
                     **{name: with_base(Cell(lookup(part, key), json_name, ["by_metric", metric, *key]), base_trees)
                        for name, key in (("tau_mean", ["kendall_tau", "mean"]), ("tau_min", ["kendall_tau", "min"]),
                                          ("pairs_kept", ["pairs_kept"]))},
                     "cells": cells})
    ranking = seeds.get("ranking") or {}
    taus = ranking.get("kendall_tau") or {}
    lines = [f"{len(seeds.get('seeds', []))} models trained with seeds {', '.join(map(str, seeds.get('seeds', [])))}"
             " (the first is the study's own), each explaining the same images: "
             + "; ".join(f"seed {s}: test accuracy {fmt(q.get('test_accuracy'))}"
                         for s, q in (seeds.get("models") or {}).items()) + "."]
    lines.append(f"Rankings that survive retraining (τ = 1 between every pair of seeds): {_names(seeds.get('survive'))}.")
    lines.append(f"Rankings that change with the seed: {_names(seeds.get('change'))}.")
    kept = sorted(((number(r["pairs_kept"].value), r["metric"]) for r in rows if number(r["pairs_kept"].value) is not None),
                  reverse=True)
    if kept:
        lines.append("Share of method pairs every seed orders alike: "
                     + ", ".join(f"{m} {fmt(v)}" for v, m in kept) + ".")
    lines.append(f"The median-rank ranking across metrics: τ between seeds {fmt(taus.get('mean'))} on average, "
                 f"{fmt(taus.get('min'))} at worst"
                 + ("; it survives retraining." if ranking.get("survives") else "; it changes with the seed.")
                 + " Median rank per seed: " + "; ".join(
                     f"{m} {', '.join(fmt(v) for v in ranks)}" for m, ranks in (ranking.get("median_rank") or {}).items())
                 + ".")
    return {"methods": methods, "rows": rows, "lines": lines, "json": json_name}


def headline(table: dict) -> list[dict]:
    """Best non-control method(s) per metric of a :func:`metric_table` (by the mean; the
    index page's summary)."""
    out = []
    for j, metric in enumerate(table["metrics"]):
        winners = [row["method"] for row in table["rows"] if row["cells"][j].best]
        if winners:
            out.append({"metric": metric["name"], "direction": metric["direction"], "best": winners})
    return out


@dataclass
class Section:
    """One reliability report of a page (a study has one; GAD has one per cell)."""

    name: str
    table: dict
    verdict: dict
    ranking_figure: str | None = None    # the ranks per metric (figures.rank_figure), beside the page
