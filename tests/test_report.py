"""The report's content by hand: number formatting, the metric table (best, greyed,
controls last), the comparison with a base revision, the verdict sentences, the flat
tables, the figures. The pages themselves are opened in a real browser in
tests/test_pipeline.py (on the outputs of the whole DAG)."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from xaibench.metrics.reliability import metric_definition
from xaibench.report import content
from xaibench.report.build import base_trees, runtime_rows
from xaibench.report.figures import gallery_figure, line_chart, rank_figure

RELIABILITY = {
    "n_images": 4, "n_resamples": 100, "level": 0.95,
    "direction": {"DAUC": "lower", "relevance_mass": "higher"},
    "intervals": {"by_metric": {
        "DAUC": {"lrp": {"mean": 0.2, "interval": [0.1, 0.3]}, "lime": {"mean": 0.4, "interval": [0.3, 0.5]},
                 "random": {"mean": 0.9, "interval": [0.85, 0.95]}},
        "relevance_mass": {"lrp": {"mean": 0.7, "interval": [0.6, 0.8]}, "lime": {"mean": 0.7, "interval": [0.5, 0.9]},
                           "random": {"mean": 0.05, "interval": [0.04, 0.06]}}}},
    "controls": {"DAUC": {"flagged": [], "separated": {"lrp": {"random": True}, "lime": {"random": True}}},
                 "relevance_mass": {"flagged": ["lime"], "separated": {"lrp": {"random": True},
                                                                       "lime": {"random": False}}}},
    "agreement": {"DAUC|relevance_mass": 0.5, "DAUC:black|DAUC": 1.0},
    "localisation": {"available": True, "chance_level": 0.05, "cue_flip": {"cue_flip_rate": 0.9},
                     "means": {"lrp": {"relevance_mass": 0.7}, "lime": {"relevance_mass": 0.7},
                               "random": {"relevance_mass": 0.05}}},
    "randomisation": {"fail_threshold": 0.5, "passed": ["lrp"], "failed": ["random"], "not_checked": [],
                      "methods": {"lrp": {"final_spearman": 0.2}, "random": {"final_spearman": 1.0}}},
}


def test_fmt_three_significant_digits_and_missing_values():
    assert content.fmt(0.224828) == "0.225"
    assert content.fmt(44.934516) == "44.9"
    assert content.fmt(0.001237) == "0.00124"
    assert content.fmt(1.0) == "1"
    assert content.fmt(1028.35) == "1028"
    assert content.fmt(None) == "n/a" and content.fmt(float("nan")) == "n/a"


def test_metric_table_marks_best_greys_flagged_and_puts_controls_last():
    table = content.metric_table(RELIABILITY, "metrics/x_reliability.json")
    assert [m["name"] for m in table["metrics"]] == ["DAUC", "relevance_mass"]
    assert [r["method"] for r in table["rows"]] == ["lime", "lrp", "random"]
    cells = {r["method"]: r["cells"] for r in table["rows"]}
    # DAUC: lower is better -> lrp (0.2); relevance mass: lime and lrp tie at 0.7, both marked
    assert [c.best for c in cells["lrp"]] == [True, True]
    assert [c.best for c in cells["lime"]] == [False, True]
    assert not any(c.best for c in cells["random"])           # a control is never "best"
    assert cells["lime"][1].greyed and not cells["lrp"][1].greyed
    assert cells["lrp"][0].interval == (0.1, 0.3) and cells["lrp"][0].interval_text == "[0.1, 0.3]"
    assert cells["lrp"][0].key == ["intervals", "by_metric", "DAUC", "lrp", "mean"]
    assert content.lookup(RELIABILITY, cells["lrp"][0].key) == 0.2


def test_best_is_per_model_group():
    reliability = {"direction": {"IAUC": "higher"}, "intervals": {"by_metric": {"IAUC": {
        "a/lime": {"mean": 0.5, "interval": [0.4, 0.6]}, "b/shap": {"mean": 0.3, "interval": [0.2, 0.4]},
        "b/grad": {"mean": 0.1, "interval": [0.0, 0.2]}}}}}
    best = {r["method"]: r["cells"][0].best for r in content.metric_table(reliability, "f")["rows"]}
    assert best == {"a/lime": True, "b/grad": False, "b/shap": True}


def test_change_against_base_is_marked_when_larger_than_the_half_interval():
    cell = content.Cell(0.5, "f.json", ["a"], interval=(0.4, 0.6))
    content.with_base(cell, {"f.json": {"a": 0.35}})
    assert cell.delta == pytest.approx(0.15) and cell.changed and cell.delta_text == "+0.15"
    content.with_base(cell, {"f.json": {"a": 0.45}})
    assert not cell.changed                                   # 0.05 < 0.1 (half of 0.6 - 0.4)
    content.with_base(cell, {"f.json": {"a": 0.5}})
    assert cell.delta_text == "±0"
    content.with_base(cell, {"f.json": None})                 # file absent at the base
    assert cell.base is None and cell.delta_text == "new" and not cell.changed
    plain = content.Cell(0.5, "f.json", ["a"])
    assert not plain.has_base and plain.delta_text == ""


def test_verdict_reads_its_numbers_off_the_report():
    verdict = content.verdict(RELIABILITY)
    assert verdict["controls"][0] == "Separate every method from the controls: DAUC."
    assert verdict["controls"][1] == "relevance_mass does not separate lime from the controls."
    assert "0.9 of test predictions follow the swapped cue" in verdict["localisation"][0]
    assert verdict["localisation"][1] == "the controls rank last on relevance mass."
    assert verdict["randomisation"] == ["pass: lrp (0.2); fail (Spearman with the fully random model ≥ 0.5): "
                                        "random (1)."]
    # variant pairs (fills) are left to the fills section
    assert verdict["agreement"][0].startswith("Kendall's τ between the method rankings of 1 metric pairs")


def test_verdict_says_when_a_control_does_not_rank_last():
    reliability = {"localisation": {"available": True, "chance_level": 0.1, "means": {
        "gradient": {"relevance_mass": 0.1}, "edge": {"relevance_mass": 0.3}, "random": {"relevance_mass": 0.05}}}}
    assert content.verdict(reliability)["localisation"][1] == "gradient rank at or below a control on relevance mass."


def test_per_model_sections_are_split():
    section = {"inception_v3": {"available": True}, "resnet50": {"available": False}}
    assert list(content.per_model(section, "available")) == ["inception_v3", "resnet50"]
    assert list(content.per_model({"available": True}, "available")) == [""]


def test_headline_names_the_best_non_control_methods():
    assert content.headline(content.metric_table(RELIABILITY, "f")) == [
        {"metric": "DAUC", "direction": "lower", "best": ["lrp"]},
        {"metric": "relevance_mass", "direction": "higher", "best": ["lime", "lrp"]}]


def test_flat_table_rows_are_dicts_with_numbers():
    tree = {"lime": {"IAUC": 0.9, "DAUC": 0.1}, "n_images": {"removal": 10}, "note": "text",
            "nested": {"deeper": {"IAUC": 0.5}}}
    table = content.flat_table(tree, "m.json")
    assert table["columns"] == ["IAUC", "DAUC", "removal"]
    rows = {r["name"]: r["cells"] for r in table["rows"]}
    assert list(rows) == ["lime", "n_images", "nested / deeper"]
    assert rows["nested / deeper"][0].key == ["nested", "deeper", "IAUC"] and rows["nested / deeper"][1] is None


def test_runtime_rows_walk_nested_files():
    runtime = {"cell": {"resnet18": {"saliency": {"n": 3, "runtime_ms_mean": 2.0, "runtime_ms_std": 0.1,
                                                  "runtime_ms_cold": 5.0}}}}
    rows, means = runtime_rows(runtime, "metrics/gad_runtime.json")
    assert means == {"cell/resnet18/saliency": 2.0}
    assert rows[0]["cells"][2].key == ["cell", "resnet18", "saliency", "runtime_ms_cold"]
    assert rows[0]["cells"][3].value is None                      # not a sampling method: no forward passes


def test_metric_definitions_cover_variants():
    assert metric_definition("DAUC:black").startswith("Deletion AUC")
    assert "variant black" in metric_definition("DAUC:black")
    assert "Arras" in metric_definition("relevance_mass")
    assert metric_definition("no_such_metric") == ""


def test_base_trees_read_the_json_at_a_revision_and_name_a_bad_one(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/a.json").write_text(json.dumps({"x": 1.5}))
    git("add", "metrics")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (tmp_path / "metrics/a.json").write_text(json.dumps({"x": 2.0}))
    trees = base_trees(tmp_path, "HEAD", ["metrics/a.json", "metrics/missing.json"])
    assert trees == {"metrics/a.json": {"x": 1.5}, "metrics/missing.json": None}
    assert base_trees(tmp_path, None, ["metrics/a.json"]) is None
    with pytest.raises(ValueError, match="'nope' is not a git revision"):
        base_trees(tmp_path, "nope", ["metrics/a.json"])


def test_cells_render_with_their_source_and_interval():
    cell = content.Cell(0.2, "metrics/x.json", ["a", "b"], (0.1, 0.3), best=True)
    from jinja2 import Environment, FileSystemLoader

    from xaibench.report.build import TEMPLATES

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    out = env.from_string('{% from "macros.html.j2" import num %}{{ num(c) }}').render(c=cell)
    assert 'data-json="metrics/x.json"' in out and 'data-key="[&#34;a&#34;, &#34;b&#34;]"' in out
    assert 'class="num best"' in out and ">0.2<" in out and "[0.1, 0.3]" in out and "delta" not in out


def test_figures_are_written(tmp_path):
    images = np.random.default_rng(0).random((2, 16, 16, 3))
    maps = {"a": np.random.default_rng(1).normal(size=(2, 8, 8)), "b": np.zeros((2, 8, 8))}
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    hulls = {"a": np.ones((2, 8, 8), bool)}
    gallery_figure(images, maps, tmp_path / "g.png", ["one", "two"], masks, [np.array([1, 1, 5, 5.]), None], hulls)
    line_chart(pd.DataFrame({"layers_random": [0, 1], "lrp_spearman": [1, .2], "lrp_ssim": [1, .3]}),
               tmp_path / "r.png", "randomisation")
    rank_figure({"metrics": ["DAUC", "IAUC"], "order": ["a", "b"], "tied": [],   # a null rank is drawn as n/a
                 "methods": {"a": {"median_rank": 1.0, "interval": [1.0, 1.5], "ranks": {"DAUC": 1, "IAUC": 1}},
                             "b": {"median_rank": None, "interval": [None, 2.0], "ranks": {"DAUC": None, "IAUC": 2}}}},
                tmp_path / "k.png")
    for name in ("g.png", "r.png", "k.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_axiom_rows_flag_a_method_above_its_tolerance():
    study = {"axioms": {"lrp": {"axiom": "conservation", "median_error": 0.02, "max_error": 0.1, "tolerance": 0.3},
                        "deeplift": {"axiom": "completeness", "median_error": 0.4, "max_error": 0.9,
                                     "tolerance": 0.05},
                        "ig": {"axiom": "completeness", "median_error": None, "max_error": None,
                               "tolerance": 0.05}}}
    rows = {row["method"]: row for row in content.axiom_rows(study, "metrics/x.json")}
    assert not rows["lrp"]["flagged"] and rows["lrp"]["note"] == "within tolerance"
    assert rows["deeplift"]["flagged"] and "above its tolerance" in rows["deeplift"]["note"]
    assert not rows["ig"]["flagged"] and rows["ig"]["note"] == "undefined on these maps"
    assert rows["deeplift"]["median"].key == ["axioms", "deeplift", "median_error"]
    assert content.axiom_rows(None, "m.json") == [] and content.axiom_rows({"axioms": None}, "m.json") == []


def test_ranking_sentence_orders_by_median_rank_and_calls_ties_ties():
    ranking = {"metrics": ["DAUC", "IAUC", "IC"], "order": ["lrp", "deeplift", "random"],
               "tied": [["lrp", "deeplift"]],
               "methods": {"lrp": {"median_rank": 1.0, "interval": [1.0, 2.0]},
                           "deeplift": {"median_rank": 2.0, "interval": [1.0, 2.0]},
                           "random": {"median_rank": 3.0, "interval": [3.0, 3.0]}}}
    text = content.ranking_sentence(ranking)
    assert text.startswith("median rank over 3 metrics")
    assert "lrp 1 [1, 2] ≈ deeplift 2 [1, 2] > random 3 [3, 3]; 1 pair(s) tied in all." in text
    assert content.verdict({"ranking": ranking})["ranking"] == [text]
    assert content.ranking_sentence(None) == "" and content.verdict({})["ranking"] == []


def test_an_uninformative_metric_greys_its_column_with_the_reason():
    reliability = {**RELIABILITY, "uninformative": {"relevance_mass": ["one value: every method scores 0.7"]},
                   "ranking": {"metrics": ["DAUC"], "left_out": ["relevance_mass"], "order": [], "methods": {}}}
    table = content.metric_table(reliability, "metrics/x_reliability.json")
    assert [m["uninformative"] for m in table["metrics"]] == [
        "", "uninformative here: one value: every method scores 0.7"]
    assert all(row["cells"][1].uninformative and not row["cells"][0].uninformative for row in table["rows"])
    assert content.verdict(reliability)["uninformative"] == [
        "relevance_mass: one value: every method scores 0.7 (left out of the ranking)."]


def test_seed_table_reads_the_retraining_report():
    seeds = {"checked": True, "seeds": [0, 1], "models": {"0": {"test_accuracy": 0.9}, "1": {"test_accuracy": 0.88}},
             "by_metric": {"IAUC": {"means": {"lrp": [0.9, 0.8], "random": [0.5, 0.5]},
                                    "seed_range": {"lrp": [0.8, 0.9], "random": [0.5, 0.5]},
                                    "bootstrap_halfwidth": {"lrp": 0.02, "random": 0.01},
                                    "rank_kept": {"lrp": 1.0, "random": 1.0},
                                    "kendall_tau": {"mean": 1.0, "min": 1.0, "pairs": {"0|1": 1.0}}, "survives": True,
                                    "pairs_kept": 1.0}},
             "ranking": {"median_rank": {"lrp": [1.0, 1.0], "random": [2.0, 2.0]}, "kendall_tau": {"mean": 1.0, "min": 1.0},
                         "survives": True},
             "survive": ["IAUC"], "change": []}
    table = content.seed_table(seeds, "metrics/x_seeds.json")
    assert table["methods"] == ["lrp", "random"] and table["rows"][0]["cells"][0] == {
        "range": "0.8–0.9", "halfwidth": "0.02", "kept": "1"}
    assert table["lines"][1] == "Rankings that survive retraining (τ = 1 between every pair of seeds): IAUC."
    assert table["lines"][3] == "Share of method pairs every seed orders alike: IAUC 1."
    assert "it survives retraining" in table["lines"][4]
    assert content.seed_table({"checked": False}, "f") is None
