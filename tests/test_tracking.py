"""MLflow helpers: flattening, and switching tracking off."""

from xaibench.tracking import flatten, stage_run


def test_flatten_nested_params():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_tracking_off_is_a_no_op(monkeypatch):
    monkeypatch.setenv("XAIBENCH_MLFLOW", "0")
    with stage_run("study", "stage", {"a": 1}, "synthetic") as run:
        run.log_metrics({"x": 1.0})
        run.log_artifact("nothing.png")
