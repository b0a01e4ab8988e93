"""Runtimes leave the science metrics: statistics by hand, the report from a store folder."""

import numpy as np
import pandas as pd
import pytest

from xaibench.metrics.runtime import flatten, mlflow_runtime_metrics, runtime_report, runtime_statistics


def test_runtime_statistics_keep_the_cold_call_apart():
    stats = runtime_statistics([100.0, 2.0, 4.0])
    assert stats == {"runtime_ms_cold": 100.0, "runtime_ms_mean": 3.0, "runtime_ms_std": 1.0, "n": 3}
    assert runtime_statistics([5.0])["runtime_ms_mean"] == 5.0


def test_runtime_report_nests_by_store_path(tmp_path):
    for model, method, times in (("m1", "lime", [9.0, 1.0, 3.0]), ("m1", "random", [1.0]), ("m2", "shap", [4.0, 6.0])):
        (tmp_path / model).mkdir(exist_ok=True)
        pd.DataFrame({"runtime_ms": times, "image_id": ["a"] * len(times)}).to_parquet(tmp_path / model / f"{method}.parquet")
    report = runtime_report(tmp_path)
    assert set(report) == {"m1", "m2"} and set(report["m1"]) == {"lime", "random"}
    assert report["m1"]["lime"]["runtime_ms_mean"] == pytest.approx(2.0)
    assert flatten(report)["m2.shap.runtime_ms_cold"] == 4.0
    logged = mlflow_runtime_metrics(report)
    assert logged["runtime.m2.shap.runtime_ms_cold"] == 4.0 and not any(k.endswith(".n") for k in logged)


def test_sampling_cost_from_the_store_columns(tmp_path):
    from xaibench.store import store_rows, write_attributions

    rows = dict(image_ids=["a", "b", "c", "d"], labels=[0] * 4, targets=[0] * 4, predicted=[0] * 4,
                probabilities=[1.0] * 4, model="m", maps=np.zeros((4, 2, 2)), runtimes_ms=[1.0] * 4, params_hash="h")
    write_attributions(tmp_path / "m" / "lime.parquet", store_rows(
        **rows, method="lime", sampling_log=[(100, True), (300, True), (1000, False), (200, True)]))
    write_attributions(tmp_path / "m" / "gradcam.parquet", store_rows(**rows, method="gradcam"))  # null columns
    report = runtime_report(tmp_path)["m"]
    assert report["lime"]["samples_mean"] == 400.0 and report["lime"]["stopped_early_share"] == 0.75
    assert "samples_mean" not in report["gradcam"]
