"""How far a ranking of methods can be trusted: paired bootstrap intervals over images,
rank stability, agreement between metrics, separation from the controls
(the reliability stage wires them into every study's outputs).

Scores are given per method as one value per image, the same images in the same order
for every method (``{method: [N]}``), so resampling images resamples every method alike
(a paired bootstrap: Efron & Tibshirani 1993, ch. 13). NaN images are left out of each
resample's mean.
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np

# the package, not its registry module: importing it declares every metric
from xaibench.metrics import METRIC_INFO, metric_info
from xaibench.metrics.registry import reported


def bootstrap_indices(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """[R, N]: R resamples of N image indices drawn with replacement (seeded)."""
    return np.random.default_rng(seed).integers(0, n_images, (n_resamples, n_images))


def resampled_means(scores: dict[str, np.ndarray], indices: np.ndarray) -> dict[str, np.ndarray]:
    """{method: [R]}: the mean score of each resample (the same resamples for every method).
    Undefined scores (NaN) are left out; a resample with none defined has the mean NaN,
    which :func:`percentile_interval` skips (numpy's warning about it is silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return {m: np.nanmean(np.asarray(v, np.float64)[indices], axis=1) for m, v in scores.items()}


def percentile_interval(means: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The (1 − level)/2 and (1 + level)/2 percentiles of the resampled means."""
    low, high = np.nanpercentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def ranks_of(means: dict[str, float], higher_is_better: bool) -> dict[str, int]:
    """Rank 1 = best; ties share the better rank (competition ranking)."""
    values = {m: (v if higher_is_better else -v) for m, v in means.items()}
    return {m: 1 + sum(other > v for other in values.values()) for m, v in values.items()}


def rank_stability(scores: dict[str, np.ndarray], higher_is_better: bool, indices: np.ndarray) -> dict[str, float]:
    """Per method, the share of resamples in which it keeps the rank it has on all images."""
    full = ranks_of({m: float(np.nanmean(v)) for m, v in scores.items()}, higher_is_better)
    means = resampled_means(scores, indices)
    kept = {m: 0 for m in scores}
    for r in range(len(indices)):
        ranks = ranks_of({m: float(means[m][r]) for m in scores}, higher_is_better)
        for m in scores:
            kept[m] += ranks[m] == full[m]
    return {m: kept[m] / len(indices) for m in scores}


def separated(scores: dict[str, np.ndarray], method: str, control: str, higher_is_better: bool,
              indices: np.ndarray, level: float = 0.95) -> bool:
    """True when the paired bootstrap interval of mean(method) − mean(control) lies wholly
    on the better side of 0."""
    means = resampled_means({k: scores[k] for k in (method, control)}, indices)
    low, high = percentile_interval(means[method] - means[control], level)
    return low > 0 if higher_is_better else high < 0


def metric_agreement(means_by_metric: dict[str, dict[str, float]],
                     higher_is_better: dict[str, bool]) -> dict[str, float]:
    """Kendall's tau between the method rankings of every pair of metrics
    (``{"IAUC|DAUC": tau}``), over the methods both metrics score (a method left out of a
    check, ``randomisation.exclude``, has none of its scores); each metric is oriented so
    that better = larger first. NaN where fewer than two methods are shared."""
    from scipy.stats import kendalltau  # lazy: ~0.5 s at import, which every stage paid
    names = sorted(means_by_metric)
    oriented = {k: {m: (v if higher_is_better[k] else -v) for m, v in means_by_metric[k].items()} for k in names}
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            methods = sorted(set(oriented[a]) & set(oriented[b]))
            tau = (kendalltau([oriented[a][m] for m in methods], [oriented[b][m] for m in methods]).statistic
                   if len(methods) > 1 else float("nan"))
            out[f"{a}|{b}"] = float(tau)
    return out


def is_control(method: str, controls) -> bool:
    """``random`` or ``<model>/random`` is a control when ``random`` is in ``controls``."""
    return method.rsplit("/", 1)[-1] in controls


def controls_of(method: str, methods: list[str], controls) -> list[str]:
    """The controls ``method`` is compared with: those of its own model group (the part
    before the last ``/``, as in ``resnet50/shap_gradient``; none for plain names)."""
    group = method.rsplit("/", 1)[0] if "/" in method else ""
    return [c for c in methods if is_control(c, controls) and (c.rsplit("/", 1)[0] if "/" in c else "") == group]


def higher_is_better(metric: str) -> bool:
    """Direction of a metric of the score table, as declared with it; ``NAME:variant``
    (e.g. ``DAUC:black``) has NAME's direction."""
    return metric_info(metric).higher_is_better


def metric_definition(metric: str) -> str:
    """One line saying what ``metric`` measures and whose it is, as declared with it;
    ``NAME:variant`` adds the variant (``DAUC:black``: deletion fill black)."""
    base, _, variant = metric.partition(":")
    text = METRIC_INFO[base].definition if base in METRIC_INFO else ""
    if variant and text:
        text += f"; variant {variant}" + (" (deletion fill)" if base == "DAUC" else "")
    return text


def fractional_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of the columns of ``values`` [R, M] per row, 1 = largest; tied values share
    the mean of the ranks they span (two methods tied for first both get 1.5); NaN stays NaN."""
    values = np.asarray(values, np.float64)
    ranks = np.full(values.shape, np.nan)
    for r, row in enumerate(values):
        defined = ~np.isnan(row)
        v = row[defined]
        above = (v[None, :] > v[:, None]).sum(1)              # how many are strictly better
        tied = (v[None, :] == v[:, None]).sum(1)              # itself included
        ranks[r, defined] = above + (tied + 1) / 2
    return ranks


def median_rank_ranking(means_by_metric: dict[str, dict[str, float]],
                        resampled_by_metric: dict[str, dict[str, np.ndarray]],
                        higher_is_better: dict[str, bool], level: float = 0.95) -> dict:
    """One ranking across metrics (LATEC, Klein et al. 2024: the median of a method's ranks
    over the metrics): per metric every method is ranked on its mean (1 = best, ties
    sharing the mean rank, :func:`fractional_ranks`), and a method's score is the median of
    its ranks. The same is done in every paired bootstrap resample of the images, giving
    the median rank's interval, and for every pair of methods the interval of the
    difference of their median ranks: a pair whose interval holds 0 is ``tied`` (no order
    between them survives resampling the images). Returns ``metrics``, per method
    ``ranks`` (per metric), ``median_rank``, ``interval``, ``spread`` (max − min rank over
    the metrics: the metrics' disagreement about it), the methods ``order``ed by median rank,
    and the ``tied`` pairs."""
    metrics = sorted(means_by_metric)
    methods = sorted({m for means in means_by_metric.values() for m in means})

    def oriented(metric, values):
        return values if higher_is_better[metric] else -values

    full = np.stack([fractional_ranks(oriented(k, np.array([[means_by_metric[k].get(m, np.nan) for m in methods]])))[0]
                     for k in metrics])                                           # [K, M]
    resampled = np.stack([fractional_ranks(oriented(k, np.stack(
        [resampled_by_metric[k].get(m, np.full(len(next(iter(resampled_by_metric[k].values()))), np.nan))
         for m in methods], 1))) for k in metrics])                               # [K, R, M]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        median = np.nanmedian(full, 0)                                            # [M]
        median_resampled = np.nanmedian(resampled, 0)                             # [R, M]
    out = {}
    for j, m in enumerate(methods):
        ranks = {k: (None if np.isnan(full[i, j]) else float(full[i, j])) for i, k in enumerate(metrics)}
        defined = [r for r in ranks.values() if r is not None]
        out[m] = {"median_rank": round(float(median[j]), 4),
                  "interval": [round(x, 4) for x in percentile_interval(median_resampled[:, j], level)],
                  "spread": float(max(defined) - min(defined)) if defined else None, "ranks": ranks}
    order = sorted(methods, key=lambda m: (out[m]["median_rank"], m))
    tied = []
    for a_index, a in enumerate(order):
        for b in order[a_index + 1:]:
            diff = median_resampled[:, methods.index(a)] - median_resampled[:, methods.index(b)]
            low, high = percentile_interval(diff, level)
            if low <= 0 <= high:
                tied.append([a, b])
    return {"metrics": metrics, "methods": out, "order": order, "tied": tied}


def metric_bounds(metric: str) -> tuple:
    """(low, high) the score cannot leave by construction, as declared with it (None: open)."""
    return metric_info(metric).bounds


def touches(interval, bound: float | None, span: float | None) -> bool:
    """Whether an interval reaches ``bound``: within 1 % of the metric's range ``span``
    (both bounds finite), else within 1e-9 (a one-sided bound: only an interval that sits on it)."""
    if bound is None or interval is None or any(np.isnan(interval)):
        return False
    tolerance = 0.01 * span if span is not None else 1e-9 * max(1.0, abs(bound))
    return min(abs(interval[0] - bound), abs(interval[1] - bound)) <= tolerance or interval[0] <= bound <= interval[1]


def uninformative_reasons(metric: str, per_method: dict[str, np.ndarray], intervals: dict[str, tuple],
                          controls, indices: np.ndarray, level: float = 0.95) -> list[str]:
    """Why ``metric`` cannot rank the methods on this data (an empty list: it can), computed
    from the numbers:

    * ``at bound``: the interval of every method (the controls aside) touches one bound of
      the metric (:func:`touches`; IIC = 0 for every map, an IAUC at 1): the metric has no
      room left to order them;
    * ``one value``: every method (the controls aside) has the same mean (to 1e-6 of its
      magnitude), whatever its map;
    * ``controls alike``: where a model group has two controls (random, edge: two maps
      unrelated to the model and to each other), the paired interval of their difference
      holds 0 in every group: the metric does not tell two different wrong maps apart.
      Controls equal on every image are left out of this: they sit at a value the metric
      gives every model-independent map by construction (eMPRT, sMPRT, the random-logit
      test: 1), so there is nothing to separate.
    """
    methods = [m for m in per_method if not is_control(m, controls)]
    reasons = []
    low, high = metric_bounds(metric)
    span = high - low if low is not None and high is not None else None
    for bound in (low, high):
        if methods and bound is not None and all(touches(intervals[m], bound, span) for m in methods):
            reasons.append(f"at bound: every method's interval touches {fmt_bound(bound)}, a bound of the metric")
    means = [float(np.nanmean(per_method[m])) for m in methods]
    if len(means) > 1 and not np.isnan(means).any() and np.ptp(means) <= 1e-6 * max(abs(v) for v in means):
        reasons.append(f"one value: every method scores {reported(means[0])}")
    pairs = []
    for m in per_method:
        if is_control(m, controls):
            pairs += [(m, c) for c in controls_of(m, list(per_method), controls) if c > m]
    # two controls equal on every image score a value fixed by construction (a model-independent
    # map scores 1 on the randomisation checks): nothing to separate, not a failing of the metric
    pairs = [(a, b) for a, b in pairs if not np.allclose(per_method[a], per_method[b], rtol=0, atol=1e-12,
                                                         equal_nan=True)]
    if pairs:
        alike = []
        for a, b in pairs:
            resampled = resampled_means({a: per_method[a], b: per_method[b]}, indices)
            lo, hi = percentile_interval(resampled[a] - resampled[b], level)
            if np.isnan(lo) or lo <= 0 <= hi:
                alike.append(f"{a} and {b}")
        if len(alike) == len(pairs):
            reasons.append(f"controls alike: {', '.join(alike)} are not separated from each other")
    return reasons


NO_ROOM = ("at bound", "one value")     # the reasons that leave a metric no order to give (not in the ranking)


def model_above_chance(correct: int, n: int, n_classes: int, level: float = 0.95) -> dict:
    """Whether a classifier has learned anything its maps could show: the Wilson score
    interval of its test accuracy (``correct`` of ``n``, two-sided ``level``),

        (p̂ + z²/2n ± z √(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n),   p̂ = correct / n,

    against chance, 1 / ``n_classes`` (a balanced test split). ``at_chance`` when the interval's
    lower end does not clear chance: every map of such a model explains noise, whatever the
    metric says of it (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal
    interval for small n)."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = correct / n
    centre, spread = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)
    chance = 1 / n_classes
    return {"test_accuracy": round(p, 6), "n_test": int(n), "chance": round(chance, 6), "level": level,
            "interval": [round(float(low), 6), round(float(high), 6)], "at_chance": bool(low <= chance)}


def fmt_bound(value: float) -> str:
    return f"{value:g}"


def reliability_report(scores, controls, n_resamples: int, level: float, seed: int) -> dict:
    """From per-image scores (a long table: method, image_id, metric, value) to the
    ``intervals``, ``agreement`` and ``controls`` sections:

    * intervals: per metric and method, the mean and its paired bootstrap interval
      (``n_resamples`` resamples of the images, the same for every method), and per
      metric the share of resamples in which each method keeps its rank;
    * agreement: Kendall's tau between the method rankings of every pair of metrics;
    * controls: per metric, each non-control method's separation from every control of
      its model group (paired interval of the difference wholly on the better side of
      0); ``flagged`` lists the methods not separated from all controls;
    * uninformative: per metric that cannot rank the methods on this data, the reasons
      (:func:`uninformative_reasons`: at a bound, one value, controls alike);
    * ranking: the median rank of every method over the metrics (their variants, such as
      the deletion fills ``DAUC:black``, left out: one vote per metric; so are the metrics
      with no room, at a bound or at one value, listed in ``left_out``: their order is noise
      or a tie; a metric whose controls score alike still orders the methods and votes),
      with its bootstrap interval and the pairs it cannot tell apart (:func:`median_rank_ranking`).
    """
    metrics = list(dict.fromkeys(scores.metric))  # in order of appearance
    directions = {m: higher_is_better(m) for m in metrics}
    wide = {metric: scores[scores.metric == metric].pivot(index="image_id", columns="method", values="value")
            for metric in metrics}
    n_images = max(len(table) for table in wide.values())
    intervals, stability, means_by_metric, control_section, resampled_by_metric = {}, {}, {}, {}, {}
    uninformative = {}
    for metric, table in wide.items():
        indices = bootstrap_indices(len(table), n_resamples, seed)  # metrics may cover other images (GAD)
        per_method = {m: table[m].to_numpy() for m in sorted(table.columns)}
        higher = directions[metric]
        resampled = resampled_means(per_method, indices)
        resampled_by_metric[metric] = resampled
        means_by_metric[metric] = {m: float(np.nanmean(v)) for m, v in per_method.items()}
        intervals[metric] = {m: {"mean": reported(means_by_metric[metric][m]),
                                 "interval": [reported(x) for x in percentile_interval(resampled[m], level)]}
                             for m in per_method}
        stability[metric] = {m: round(v, 4) for m, v in rank_stability(per_method, higher, indices).items()}
        verdict = {m: {c: separated(per_method, m, c, higher, indices, level)
                       for c in controls_of(m, list(per_method), controls)}
                   for m in per_method if not is_control(m, controls)}
        control_section[metric] = {"separated": verdict,
                                   "flagged": sorted(m for m, v in verdict.items() if not all(v.values()))}
        reasons = uninformative_reasons(metric, per_method, {m: percentile_interval(resampled[m], level)
                                                             for m in per_method}, controls, indices, level)
        if reasons:
            uninformative[metric] = reasons
    no_room = {k for k, reasons in uninformative.items() if any(r.startswith(NO_ROOM) for r in reasons)}
    voting = {k: v for k, v in means_by_metric.items() if ":" not in k and k not in no_room}
    if not voting:                     # every metric uninformative: rank on them all rather than on none
        voting = {k: v for k, v in means_by_metric.items() if ":" not in k}
    ranking = median_rank_ranking(voting, resampled_by_metric, directions, level)
    ranking["left_out"] = sorted(k for k in means_by_metric if ":" not in k and k not in voting)
    return {"n_images": n_images, "n_resamples": n_resamples, "level": level,
            "direction": {m: "higher" if directions[m] else "lower" for m in metrics},
            "intervals": {"by_metric": intervals, "rank_stability": stability},
            "agreement": {k: round(v, 6) for k, v in metric_agreement(
                means_by_metric, directions).items()},
            "controls": control_section, "uninformative": uninformative, "ranking": ranking}


def seed_stability(scores_by_seed: dict, n_resamples: int, level: float, seed: int) -> dict:
    """How a study's rankings survive retraining, from per-image scores of the same images
    under k models trained with different seeds (``{seed: long table}``, the first the
    study's own model). Per metric (those scored under every seed):

    * ``means``: each method's mean under each seed, ``seed_range`` its [min, max] and
      ``seed_sd`` its standard deviation over the seeds, beside ``bootstrap_halfwidth``,
      the mean half-width of the paired image-bootstrap interval under one model: a
      spread of retraining larger than that half-width is variance the bootstrap of one
      model does not show;
    * ``rank_kept``: per method, the share of the retrained models (the k − 1 others) in
      which it keeps the rank it has under the study's own model (ranks 1 = best, ties
      sharing the better rank, :func:`ranks_of`);
    * ``kendall_tau``: Kendall's τ between the method rankings of every pair of seeds,
      their ``mean`` and ``min``;
    * ``survives``: τ = 1 for every pair (the same order under every model), and
      ``pairs_kept``: the share of method pairs every seed orders alike (one swap of two
      neighbours breaks τ = 1 but keeps the other pairs).

    The same for the median-rank aggregate (``ranking``: each seed's median rank of every
    method over the metrics, fractional ranks, :func:`fractional_ranks`)."""
    seeds = list(scores_by_seed)
    wide = {s: {metric: table[table.metric == metric].pivot(index="image_id", columns="method", values="value")
                for metric in dict.fromkeys(table.metric)} for s, table in scores_by_seed.items()}
    metrics = [m for m in wide[seeds[0]] if all(m in wide[s] for s in seeds)]
    by_metric, means_by_seed = {}, {s: {} for s in seeds}
    for metric in metrics:
        higher = higher_is_better(metric)
        methods = sorted(set.intersection(*(set(wide[s][metric].columns) for s in seeds)))
        means, halfwidths = {m: [] for m in methods}, {m: [] for m in methods}
        for s in seeds:
            table = wide[s][metric]
            per_method = {m: table[m].to_numpy() for m in methods}
            resampled = resampled_means(per_method, bootstrap_indices(len(table), n_resamples, seed))
            for m in methods:
                means[m].append(float(np.nanmean(per_method[m])))
                low, high = percentile_interval(resampled[m], level)
                halfwidths[m].append((high - low) / 2)
            means_by_seed[s][metric] = {m: means[m][-1] for m in methods}
        ranks = [ranks_of({m: means[m][i] for m in methods}, higher) for i in range(len(seeds))]
        taus = _seed_taus({s: means_by_seed[s][metric] for s in seeds}, higher)
        by_metric[metric] = {
            "means": {m: [reported(v) for v in means[m]] for m in methods},
            "seed_range": {m: [reported(np.nanmin(means[m])), reported(np.nanmax(means[m]))] for m in methods},
            "seed_sd": {m: reported(np.nanstd(means[m], ddof=1)) for m in methods},
            "bootstrap_halfwidth": {m: reported(np.nanmean(halfwidths[m])) for m in methods},
            "rank_kept": {m: reported(np.mean([r[m] == ranks[0][m] for r in ranks[1:]])) for m in methods},
            "kendall_tau": taus, "survives": taus["min"] is not None and taus["min"] >= 1 - 1e-9,
            "pairs_kept": _pairs_kept({s: means_by_seed[s][metric] for s in seeds}, methods)}
    voting = [m for m in metrics if ":" not in m]
    median_ranks = {}
    for s in seeds:
        methods = sorted(set.intersection(*(set(means_by_seed[s][m]) for m in voting))) if voting else []
        table = np.array([[means_by_seed[s][m][x] if higher_is_better(m) else -means_by_seed[s][m][x]
                           for x in methods] for m in voting])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            median = np.nanmedian(fractional_ranks(table), 0) if len(voting) else []
        median_ranks[s] = {x: float(v) for x, v in zip(methods, median)}
    taus = _seed_taus(median_ranks, higher=False)
    order = sorted(median_ranks[seeds[0]], key=median_ranks[seeds[0]].get)
    places = {s: ranks_of(median_ranks[s], higher_is_better=False) for s in seeds}   # 1 = the lowest median rank
    ranking = {"median_rank": {x: [median_ranks[s].get(x) for s in seeds] for x in order},
               "rank_kept": {x: reported(np.mean([places[s].get(x) == places[seeds[0]][x] for s in seeds[1:]]))
                             for x in order},
               "kendall_tau": taus, "survives": taus["min"] is not None and taus["min"] >= 1 - 1e-9}
    return {"seeds": seeds, "by_metric": by_metric, "ranking": ranking,
            "survive": sorted(m for m, v in by_metric.items() if v["survives"] and ":" not in m),
            "change": sorted(m for m, v in by_metric.items() if not v["survives"] and ":" not in m)}


def _pairs_kept(means_by_seed: dict, methods: list[str]) -> float | None:
    """The share of method pairs that every seed orders the same way (strictly, or tied
    under every seed): 1 where the ranking survives retraining whole, lower where some
    neighbours swap (τ = 1 asks this of every pair)."""
    pairs = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]
    if not pairs:
        return None
    kept = sum(len({np.sign(v[a] - v[b]) for v in means_by_seed.values()}) == 1 for a, b in pairs)
    return reported(kept / len(pairs))


def _seed_taus(means_by_seed: dict, higher: bool) -> dict:
    """Kendall's τ between the method orders of every pair of seeds (``"0|1"``), with their
    mean and min (None where undefined: a metric that ties every method)."""
    from scipy.stats import kendalltau  # lazy: ~0.5 s at import, which every stage paid
    seeds = list(means_by_seed)
    methods = sorted(set.intersection(*(set(v) for v in means_by_seed.values())))
    pairs = {}
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            x = [means_by_seed[a][m] * (1 if higher else -1) for m in methods]
            y = [means_by_seed[b][m] * (1 if higher else -1) for m in methods]
            tau = kendalltau(x, y).statistic
            pairs[f"{a}|{b}"] = None if tau is None or np.isnan(tau) else round(float(tau), 6)
    defined = [t for t in pairs.values() if t is not None]
    return {"pairs": pairs, "mean": round(float(np.mean(defined)), 6) if defined else None,
            "min": min(defined) if defined else None}
