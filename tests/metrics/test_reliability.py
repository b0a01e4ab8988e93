"""Reliability statistics on hand-checkable inputs."""

import numpy as np
import pytest

from xaibench.metrics.reliability import (bootstrap_indices, metric_agreement, percentile_interval, rank_stability,
                                          ranks_of, resampled_means, separated)


def test_bootstrap_interval_of_a_constant_has_zero_width():
    indices = bootstrap_indices(20, 500, seed=0)
    means = resampled_means({"m": np.full(20, 0.7)}, indices)["m"]
    assert percentile_interval(means) == pytest.approx((0.7, 0.7))


def test_resamples_are_paired_and_seeded():
    indices = bootstrap_indices(5, 3, seed=1)
    assert np.array_equal(indices, bootstrap_indices(5, 3, seed=1)) and indices.shape == (3, 5)
    scores = {"a": np.arange(5.0), "b": np.arange(5.0) + 10}
    means = resampled_means(scores, indices)
    assert np.allclose(means["b"] - means["a"], 10)   # same images in every resample


def test_ranks_by_hand():
    assert ranks_of({"a": 0.9, "b": 0.5, "c": 0.9}, higher_is_better=True) == {"a": 1, "b": 3, "c": 1}
    assert ranks_of({"a": 0.9, "b": 0.5}, higher_is_better=False) == {"a": 2, "b": 1}


def test_rank_stability_of_separated_and_tied_methods():
    rng = np.random.default_rng(0)
    indices = bootstrap_indices(30, 200, seed=0)
    apart = {"good": 1 + 0.01 * rng.random(30), "bad": 0.01 * rng.random(30)}
    assert rank_stability(apart, True, indices) == {"good": 1.0, "bad": 1.0}
    noise = {"x": rng.normal(size=30), "y": rng.normal(size=30)}
    stability = rank_stability(noise, True, indices)
    assert 0.2 < stability["x"] < 1.0                  # exchangeable methods swap ranks


def test_separation_from_a_control():
    indices = bootstrap_indices(40, 500, seed=0)
    rng = np.random.default_rng(1)
    control = rng.random(40)
    scores = {"method": control + 0.5, "control": control, "same": control + 0.001 * rng.normal(size=40)}
    assert separated(scores, "method", "control", True, indices)
    assert not separated(scores, "method", "control", False, indices)   # lower-is-better: wrong side
    assert not separated(scores, "same", "control", True, indices)


def test_metric_agreement_by_hand():
    means = {"IAUC": {"a": 3.0, "b": 2.0, "c": 1.0}, "DAUC": {"a": 0.1, "b": 0.2, "c": 0.3},
             "AD": {"a": 0.3, "b": 0.2, "c": 0.1}}
    tau = metric_agreement(means, {"IAUC": True, "DAUC": False, "AD": False})
    assert tau["DAUC|IAUC"] == pytest.approx(1.0)     # same order once DAUC is turned round
    assert tau["AD|IAUC"] == pytest.approx(-1.0) and tau["AD|DAUC"] == pytest.approx(-1.0)


def test_reliability_report_from_per_image_scores():
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    rng = np.random.default_rng(0)
    rows = []
    for k in range(30):
        noise = rng.random()
        for method, iauc, dauc in (("good", 0.9 + 0.05 * noise, 0.1), ("random", 0.5 + 0.05 * noise, 0.5),
                                   ("edge", 0.9 + 0.05 * noise, 0.5)):
            rows += [{"method": method, "image_id": str(k), "metric": "IAUC", "value": iauc},
                     {"method": method, "image_id": str(k), "metric": "DAUC", "value": dauc}]
    report = reliability_report(pd.DataFrame(rows), ["random", "edge"], n_resamples=200, level=0.95, seed=0)
    assert report["n_images"] == 30 and report["direction"] == {"IAUC": "higher", "DAUC": "lower"}
    # DAUC is constant per method: zero-width intervals
    assert report["intervals"]["by_metric"]["DAUC"]["good"]["interval"] == [0.1, 0.1]
    # on IAUC "good" ties the edge control image by image: not separated, so flagged
    assert report["controls"]["IAUC"]["separated"]["good"] == {"random": True, "edge": False}
    assert report["controls"]["IAUC"]["flagged"] == ["good"]
    assert report["controls"]["DAUC"]["flagged"] == []
    assert report["intervals"]["rank_stability"]["DAUC"]["good"] == 1.0


def test_metric_directions_include_variants_and_localisation():
    from xaibench.metrics.reliability import higher_is_better

    assert not higher_is_better("DAUC") and not higher_is_better("DAUC:black") and higher_is_better("relevance_mass")
    with pytest.raises(KeyError, match="no metric .mystery. is declared"):
        higher_is_better("mystery")


def test_fills_and_saturation_of_a_model_that_ignores_its_input():
    import torch

    from xaibench.models import NormalizedClassifier
    from xaibench.studies.reliability import fill_images, fills_and_saturation

    class Constant(torch.nn.Module):                      # logits (log 3, 0): p(class 0) = 0.75 always
        def forward(self, x):
            return torch.tensor([[np.log(3.0), 0.0]]).expand(len(x), 2)

    model = NormalizedClassifier(Constant(), [0.5] * 3, [0.5] * 3)
    pixels = torch.rand(2, 3, 8, 8)
    assert torch.equal(fill_images(model, pixels, "black", 5.0), torch.zeros_like(pixels))
    assert torch.allclose(fill_images(model, pixels, "mean", 5.0), torch.full_like(pixels, 0.5))
    maps = {"a": np.random.default_rng(0).random((2, 8, 8))}
    rows, fills, saturation = fills_and_saturation(model, pixels, maps, torch.tensor([0, 0]), ["0", "1"],
                                                   ["mean", "black", "blur"], 4, 5.0, 16, n_classes=2)
    assert {r["metric"] for r in rows} == {"DAUC:mean", "DAUC:black", "DAUC:blur"} and len(rows) == 6
    assert all(v["a"] == pytest.approx(0.75) for v in fills["DAUC"].values())
    assert saturation["clean"] == pytest.approx(0.75) and saturation["insertion_start"] == pytest.approx(0.75)
    assert saturation["insertion_start_retains"] == pytest.approx(1.0) and saturation["insertion_start_carries_class"]


def test_fills_reuse_the_daucs_evaluate_stored_and_measure_the_rest():
    import pandas as pd
    import torch

    from xaibench.models import NormalizedClassifier
    from xaibench.studies.reliability import fills_and_saturation, stored_daucs

    class MeanRed(torch.nn.Module):                       # logit of class 0: the image's mean red
        def forward(self, x):
            return torch.stack([x[:, 0].mean((1, 2)), torch.zeros(len(x))], 1)

    model = NormalizedClassifier(MeanRed(), [0.0] * 3, [1.0] * 3)
    pixels = torch.rand(2, 3, 4, 4)
    maps = {"a": np.random.default_rng(0).random((2, 4, 4)), "b": np.random.default_rng(1).random((2, 4, 4))}
    args = (model, pixels, maps, torch.tensor([0, 0]), ["0", "1"], ["mean", "black"], 4, 5.0, 16, 2)
    rows, fills, saturation = fills_and_saturation(*args)
    measured = {(r["method"], r["metric"], r["image_id"]): r["value"] for r in rows}
    # the evaluate stage's table: method a's DAUC (to the mean fill) on both images, in another order
    stored = pd.DataFrame({"method": ["a", "a", "a"], "image_id": ["1", "0", "0"], "metric": ["DAUC", "DAUC", "IAUC"],
                           "value": [0.25, 0.5, 0.9]})
    scored = stored_daucs(stored, ["0", "1"], "mean")
    assert list(scored) == ["mean"] and list(scored["mean"]) == ["a"] and scored["mean"]["a"].tolist() == [0.5, 0.25]
    assert stored_daucs(stored, ["0", "2"], "mean") == {}          # an image evaluate did not score: measured
    assert stored_daucs(pd.DataFrame(), ["0"], "mean") == {}
    with_null = stored.assign(value=[np.nan, 0.5, 0.9])          # another CPU's run: a null DAUC stays in place
    assert np.isnan(stored_daucs(with_null, ["0", "1"], "mean")["mean"]["a"][1])
    rows_null, fills_null, _ = fills_and_saturation(*args, scored=stored_daucs(with_null, ["0", "1"], "mean"))
    null_rows = {r["image_id"]: r["value"] for r in rows_null if r["method"] == "a" and r["metric"] == "DAUC:mean"}
    assert null_rows["0"] == 0.5 and np.isnan(null_rows["1"]) and np.isnan(fills_null["DAUC"]["mean"]["a"])
    rows2, fills2, saturation2 = fills_and_saturation(*args, scored=scored)
    reused = {(r["method"], r["metric"], r["image_id"]): r["value"] for r in rows2}
    assert reused[("a", "DAUC:mean", "0")] == 0.5 and reused[("a", "DAUC:mean", "1")] == 0.25
    assert fills2["DAUC"]["mean"]["a"] == 0.375
    for key, value in measured.items():            # everything not stored is measured as before
        if key[:2] != ("a", "DAUC:mean"):
            assert reused[key] == pytest.approx(value)
    assert saturation2 == saturation
    # the fully deleted image's probability is the curves' last point: logit of mean red 0 vs 0
    assert saturation["fully_deleted"]["black"] == pytest.approx(0.5)


def test_controls_are_matched_within_each_model_group():
    from xaibench.metrics.reliability import controls_of, is_control

    methods = ["resnet50/shap", "resnet50/random", "inception_v3/lime", "inception_v3/random", "lrp", "random"]
    assert is_control("resnet50/random", ["random"]) and not is_control("resnet50/shap", ["random"])
    assert controls_of("resnet50/shap", methods, ["random", "edge"]) == ["resnet50/random"]
    assert controls_of("lrp", methods, ["random"]) == ["random"]


def test_cue_flip_rate_counts_predictions_that_follow_the_swapped_cue():
    import torch

    from xaibench.studies.reliability import cue_flip_rate

    class Brightness(torch.nn.Module):                    # class 1 when the image is bright, else 0
        def forward(self, x):
            bright = x.mean((1, 2, 3))
            return torch.stack([0.5 - bright, bright - 0.5], 1)

    swapped = np.zeros((4, 4, 4, 3), np.uint8)
    swapped[:3] = 255                                     # three bright swapped images
    cues = {"swapped_images": swapped, "swapped_labels": np.array([1, 1, 0, 0])}
    # predictions 1, 1, 1, 0 against swapped labels 1, 1, 0, 0: three of four follow
    assert cue_flip_rate(Brightness(), cues) == {"available": True, "cue_flip_rate": 0.75, "n_images": 4}
    assert cue_flip_rate(Brightness(), None) == {"available": False}


def test_localisation_section_puts_chance_beside_the_means():
    from xaibench.studies.reliability import localisation

    masks = np.zeros((2, 4, 4), bool)
    masks[:, :2, :2] = True
    cues = {"cue_masks": masks}
    maps = {"inside": masks.astype(float), "outside": (~masks).astype(float)}
    rows, section = localisation(maps, ["a", "b"], cues)
    assert section["chance_level"] == 0.25 and section["means"]["inside"]["relevance_mass"] == 1.0
    assert section["means"]["outside"]["pointing_game"] == 0.0 and len(rows) == 2 * 3 * 2
    assert localisation(maps, ["a", "b"], None)[1]["available"] is False


def test_randomisation_exclusions_are_checked_against_the_study_methods():
    from types import SimpleNamespace

    from xaibench.schema import ParamsError
    from xaibench.studies.reliability import excluded_methods

    cfg = SimpleNamespace(randomisation=SimpleNamespace(exclude={"ssd_coco": ["lime", "shap"]}))
    assert excluded_methods(cfg, "ssd_coco", ["lrp", "lime", "shap"]) == ["lime", "shap"]
    assert excluded_methods(cfg, "catsdogs", ["lrp"]) == []           # nothing excluded there
    with pytest.raises(ParamsError, match=r"exclude.ssd_coco: \['shap'\] are not explained in this study"):
        excluded_methods(cfg, "ssd_coco", ["lrp", "lime"])


def test_final_spearmans_name_a_metric_per_method_and_group():
    from xaibench.studies.reliability import final_spearmans

    section = {"methods": {"lrp": {"final_spearman": 0.1}, "edge": {"final_spearman": 1.0}}, "passed": ["lrp"]}
    assert final_spearmans(section) == {"randomisation.final_spearman.lrp": 0.1,
                                        "randomisation.final_spearman.edge": 1.0}
    by_arch = {"resnet50": {"methods": {"shap_gradient": {"final_spearman": 0.3}}}}
    assert final_spearmans(by_arch) == {"randomisation.final_spearman.resnet50.shap_gradient": 0.3}


def test_a_resample_of_undefined_scores_has_no_mean_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = resampled_means({"m": np.array([np.nan, np.nan, 1.0])}, np.array([[0, 1, 0], [2, 0, 2]]))["m"]
    assert np.isnan(means[0]) and means[1] == 1.0
    assert percentile_interval(means) == (1.0, 1.0)


def test_fractional_ranks_share_the_mean_rank_of_a_tie():
    from xaibench.metrics.reliability import fractional_ranks

    np.testing.assert_array_equal(fractional_ranks(np.array([[3.0, 2.0, 2.0, np.nan, 1.0]])),
                                  [[1.0, 2.5, 2.5, np.nan, 4.0]])


def test_median_rank_across_metrics_by_hand_and_its_ties():
    """IAUC (higher better): a 3 > b 2 > c 1 -> ranks 1, 2, 3. DAUC (lower better): a and b
    both 0.1, c 0.5 -> 1.5, 1.5, 3. Median over the two metrics: a 1.25, b 1.75, c 3. With no
    image-to-image noise every resample agrees: no pair is tied. DAUC:black (a variant) does
    not vote."""
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    rows = [{"method": m, "image_id": str(i), "metric": metric, "value": value}
            for i in range(6)
            for metric, values in (("IAUC", {"a": 3, "b": 2, "c": 1}), ("DAUC", {"a": 0.1, "b": 0.1, "c": 0.5}),
                                   ("DAUC:black", {"a": 0.9, "b": 0.1, "c": 0.1}))
            for m, value in values.items()]
    ranking = reliability_report(pd.DataFrame(rows), [], 50, 0.95, 0)["ranking"]
    assert ranking["metrics"] == ["DAUC", "IAUC"]
    assert {m: r["median_rank"] for m, r in ranking["methods"].items()} == {"a": 1.25, "b": 1.75, "c": 3.0}
    assert ranking["methods"]["b"]["ranks"] == {"DAUC": 1.5, "IAUC": 2.0} and ranking["methods"]["b"]["spread"] == 0.5
    assert ranking["order"] == ["a", "b", "c"] and ranking["tied"] == []
    assert ranking["methods"]["a"]["interval"] == [1.25, 1.25]


def test_two_methods_with_the_same_scores_up_to_noise_are_called_tied():
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    rng = np.random.default_rng(0)
    rows = []
    for metric in ("IAUC", "IC"):
        for m, centre in (("a", 0.5), ("b", 0.5), ("c", 0.9)):
            rows += [{"method": m, "image_id": str(i), "metric": metric, "value": centre + rng.normal(0, 0.2)}
                     for i in range(30)]
    ranking = reliability_report(pd.DataFrame(rows), [], 200, 0.95, 0)["ranking"]
    assert ranking["order"][0] == "c"
    assert sorted(map(sorted, ranking["tied"])) == [["a", "b"]]


def _rows(metric: str, values: dict[str, list[float]]) -> list[dict]:
    return [{"method": m, "image_id": str(i), "metric": metric, "value": v}
            for m, per_image in values.items() for i, v in enumerate(per_image)]


def test_a_metric_every_method_pins_at_its_bound_is_uninformative_and_does_not_vote():
    """IIC (a percentage in [0, 100]) of 0 for both methods: every interval touches 0; IAUC
    differs between them and stays; the controls differ (random 50, edge 0 on IIC)."""
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    n = 20
    rows = (_rows("IIC", {"a": [0.0] * n, "b": [0.0] * n, "random": [100.0, 0.0] * (n // 2), "edge": [0.0] * n})
            + _rows("IAUC", {"a": [0.8, 0.9] * (n // 2), "b": [0.5, 0.6] * (n // 2), "random": [0.3] * n,
                             "edge": [0.4] * n}))
    report = reliability_report(pd.DataFrame(rows), ["random", "edge"], 200, 0.95, 0)
    assert list(report["uninformative"]) == ["IIC"]
    assert report["uninformative"]["IIC"][0].startswith("at bound: every method's interval touches 0")
    assert any(r.startswith("one value: every method scores 0") for r in report["uninformative"]["IIC"])
    assert report["ranking"]["metrics"] == ["IAUC"] and report["ranking"]["left_out"] == ["IIC"]


def test_controls_that_score_alike_make_a_metric_uninformative_but_two_distinct_ones_do_not():
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    rng = np.random.default_rng(1)
    same = rng.normal(0.4, 0.05, 30)
    rows = (_rows("DC", {"a": list(rng.normal(0.6, 0.05, 30)), "b": list(rng.normal(0.3, 0.05, 30)),
                         "random": list(same), "edge": list(same + rng.normal(0, 0.01, 30))})
            + _rows("IC", {"a": list(rng.normal(0.6, 0.05, 30)), "b": list(rng.normal(0.3, 0.05, 30)),
                           "random": list(rng.normal(0.0, 0.05, 30)), "edge": list(rng.normal(0.2, 0.05, 30))}))
    reasons = reliability_report(pd.DataFrame(rows), ["random", "edge"], 300, 0.95, 0)["uninformative"]
    assert list(reasons) == ["DC"] and reasons["DC"] == ["controls alike: edge and random are not separated "
                                                         "from each other"]
    ranking = reliability_report(pd.DataFrame(rows), ["random", "edge"], 300, 0.95, 0)["ranking"]
    assert ranking["metrics"] == ["DC", "IC"] and ranking["left_out"] == []   # DC still orders a and b


def test_touching_a_bound_is_within_one_percent_of_the_range_or_exact_for_an_open_side():
    from xaibench.metrics.reliability import touches

    assert touches((0.992, 0.999), 1.0, 1.0) and not touches((0.95, 0.98), 1.0, 1.0)
    assert touches((-0.5, 0.4), 0.0, 1.0)                       # holds the bound
    assert touches((0.0, 0.3), 0.0, None) and not touches((1e-4, 0.3), 0.0, None)


def test_seed_stability_by_hand():
    """Three seeds, two metrics, methods a, b, c on 10 images. IAUC keeps the order a > b > c
    under every seed (τ = 1, survives, every rank kept); DAUC (lower better) swaps a and b
    under the third seed: τ(0, 2) = τ(1, 2) = 1/3, min 1/3, a and b keep their ranks in one
    of the two retrained models. The seed ranges are the per-seed means' extremes."""
    import pandas as pd

    from xaibench.metrics.reliability import seed_stability

    def table(iauc, dauc):
        return pd.DataFrame(_rows("IAUC", {m: [v] * 10 for m, v in iauc.items()})
                            + _rows("DAUC", {m: [v] * 10 for m, v in dauc.items()}))

    scores = {0: table({"a": 0.9, "b": 0.6, "c": 0.3}, {"a": 0.1, "b": 0.2, "c": 0.5}),
              1: table({"a": 0.8, "b": 0.5, "c": 0.2}, {"a": 0.1, "b": 0.3, "c": 0.5}),
              2: table({"a": 0.7, "b": 0.6, "c": 0.1}, {"a": 0.3, "b": 0.2, "c": 0.5})}
    report = seed_stability(scores, 50, 0.95, 0)
    iauc, dauc = report["by_metric"]["IAUC"], report["by_metric"]["DAUC"]
    assert iauc["survives"] and iauc["kendall_tau"]["min"] == 1.0 and iauc["rank_kept"] == {"a": 1, "b": 1, "c": 1}
    assert iauc["seed_range"]["a"] == [0.7, 0.9] and iauc["means"]["c"] == [0.3, 0.2, 0.1]
    assert iauc["bootstrap_halfwidth"]["a"] == 0.0                 # constant per image: no image variance
    assert not dauc["survives"] and dauc["kendall_tau"]["pairs"]["0|1"] == 1.0
    assert dauc["kendall_tau"]["pairs"]["0|2"] == pytest.approx(1 / 3, abs=1e-6)
    assert dauc["rank_kept"] == {"a": 0.5, "b": 0.5, "c": 1.0}
    assert iauc["pairs_kept"] == 1.0 and dauc["pairs_kept"] == pytest.approx(2 / 3, abs=1e-5)   # a-b swapped
    assert report["survive"] == ["IAUC"] and report["change"] == ["DAUC"]
    # the median rank over the two metrics: seed 2 gives a and b 1.5 each
    assert report["ranking"]["median_rank"]["a"] == [1.0, 1.0, 1.5]
    # a keeps its place (first, shared with b under seed 2) though its median rank moves
    assert report["ranking"]["rank_kept"] == {"a": 1.0, "b": 0.5, "c": 1.0}


def test_controls_equal_on_every_image_by_construction_are_not_called_alike():
    import pandas as pd

    from xaibench.metrics.reliability import reliability_report

    rng = np.random.default_rng(2)
    rows = _rows("eMPRT", {"a": list(rng.normal(2.0, 0.1, 20)), "b": list(rng.normal(1.5, 0.1, 20)),
                           "random": [1.0] * 20, "edge": [1.0] * 20})
    assert reliability_report(pd.DataFrame(rows), ["random", "edge"], 200, 0.95, 0)["uninformative"] == {}


def test_agreement_is_over_the_methods_both_metrics_score():
    """A method left out of a check (randomisation.exclude) has no eMPRT: τ(IAUC, eMPRT) is over
    the other three, in the same order on both (1)."""
    from xaibench.metrics.reliability import metric_agreement

    means = {"IAUC": {"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.7}, "eMPRT": {"a": 3.0, "b": 2.0, "c": 1.0}}
    assert metric_agreement(means, {"IAUC": True, "eMPRT": True}) == {"IAUC|eMPRT": pytest.approx(1.0)}


def test_model_above_chance_by_the_wilson_interval():
    from xaibench.metrics.reliability import model_above_chance

    coin = model_above_chance(133, 240, 2)           # 0.554: Wilson 95 % [0.491, 0.616] reaches 0.5
    assert coin["at_chance"] and coin["interval"][0] == pytest.approx(0.4909, abs=1e-3)
    learned = model_above_chance(138, 144, 2)        # 0.958: far above
    assert not learned["at_chance"] and learned["interval"][0] > 0.9
    assert model_above_chance(30, 100, 5)["at_chance"] is False   # 0.30 of five classes: lower end 0.22 > 0.2
    assert model_above_chance(24, 100, 5)["at_chance"] is True
