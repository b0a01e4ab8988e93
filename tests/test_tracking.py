"""MLflow helpers: flattening, switching tracking off, the worker process of a stage's run."""

import os
import time

from xaibench.tracking import PrefixedRun, defined_metrics, flatten, stage_run


def test_flatten_nested_params():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_tracking_off_is_a_no_op(monkeypatch):
    monkeypatch.setenv("XAIBENCH_MLFLOW", "0")
    with stage_run("study", "stage", {"a": 1}, "synthetic") as run:
        run.log_metrics({"x": 1.0})
        run.log_artifact("nothing.png")


def test_stage_run_logs_params_metrics_and_status(tmp_path, monkeypatch):
    """The run is opened in the background; what is logged before it is open is queued."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("XAIBENCH_MLFLOW", raising=False)
    artifact = tmp_path / "figure.txt"
    artifact.write_text("x")
    monkeypatch.chdir(tmp_path)  # artifacts go under the working directory
    with stage_run("study", "train", {"model": {"width": 4}}, "synthetic") as run:
        for epoch in (1, 2, 3):
            run.log_metrics({"loss": 1.0 / epoch, "skipped": float("nan"), "mass": None}, step=epoch)
        run.log_artifact(artifact)
    try:
        with stage_run("study", "evaluate", {}, "synthetic"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("study")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    train = runs["train"]
    assert train.info.status == "FINISHED" and runs["evaluate"].info.status == "FAILED"
    assert train.data.params == {"model.width": "4"}
    assert train.data.tags["data_source"] == "synthetic"
    history = client.get_metric_history(train.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert "skipped" not in train.data.metrics and "mass" not in train.data.metrics
    assert train.data.tags["undefined_metrics"] == "mass, skipped"   # null / NaN: named, never a crash
    assert [a.path for a in client.list_artifacts(train.info.run_id)] == ["figure.txt"]


def test_undefined_metrics_are_named_not_logged():
    clean, undefined = defined_metrics({"a": 1, "b": None, "c": float("nan"), "d": float("inf"), "e": True, "f": "x"})
    assert clean == {"a": 1.0, "e": 1.0} and undefined == ["b", "c", "d"]


def test_a_name_mlflow_refuses_is_made_one_it_takes():
    clean, _ = defined_metrics({"rank_stability.vgg16_cub.RC.lrp+gad": 0.5, "IAUC:black.lime": 1})
    assert clean == {"rank_stability.vgg16_cub.RC.lrp_gad": 0.5, "IAUC:black.lime": 1.0}


def test_a_relative_sqlite_store_is_pinned_to_the_starting_directory(tmp_path, monkeypatch):
    """A stage that works in a scratch directory a while (seeds@) still writes to the project's store."""
    from xaibench.tracking import absolute_uri

    monkeypatch.chdir(tmp_path)
    assert absolute_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_stage_that_dies_before_closing_leaves_its_run_failed(tmp_path):
    """The worker process sees the pipe close without a status and marks the run FAILED;
    a run started by start_worker() before the stage's imports is the one stage_run uses."""
    import subprocess
    import sys

    from xaibench.tracking import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = ("import os\n"
              "from xaibench.tracking import stage_run, start_worker\n"
              "start_worker()\n"
              "with stage_run('study', 'train', {}, 'synthetic') as run:\n"
              "    run.log_metrics({'loss': 0.5}, step=1)\n"
              "    os._exit(3)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XAIBENCH_MLFLOW": "1"}
    died = subprocess.run([os.path.abspath(sys.executable), "-c", script], env=env, cwd=tmp_path, timeout=120)
    assert died.returncode == 3
    client = open_client(uri)   # under the store's lock: the orphaned worker may still be creating it
    runs = []
    for _ in range(100):   # the orphaned worker finishes on its own
        experiment = client.get_experiment_by_name("study")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and runs[0].info.status != "RUNNING":
            break
        time.sleep(0.2)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [0.5]


def test_workers_that_open_one_new_store_at_once_all_keep_their_runs(tmp_path):
    """Four stages started together on a store not yet created: each worker creates the
    tables under the store's lock or finds them made, none goes untracked (unlocked, the
    losers failed on "table ... already exists")."""
    import json
    import subprocess
    import sys

    from xaibench.tracking import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    workers = [subprocess.Popen([sys.executable, "-m", "xaibench.tracking", uri], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for number, worker in enumerate(workers):
        opened = {"op": "open", "study": "study", "stage": f"stage{number}", "start_ms": 1, "tags": {}, "params": {}}
        closed = {"op": "close", "status": "FINISHED", "end_ms": 2}
        worker.stdin.write(json.dumps(opened) + "\n" + json.dumps(closed) + "\n")
        worker.stdin.close()
    errors = [worker.stderr.read() for worker in workers]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]
    assert not [e for e in errors if "failed" in e], errors
    client = open_client(uri)
    runs = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [(f"stage{n}", "FINISHED") for n in range(4)]


def test_a_prefixed_run_names_each_metric_after_its_part_and_passes_artifacts_on():
    class Recorder:
        def __init__(self):
            self.calls = []

        def log_metrics(self, metrics, step=None):
            self.calls.append(("metrics", metrics, step))

        def log_artifact(self, path):
            self.calls.append(("artifact", path))

        def log_artifacts(self, folder, artifact_path=None):
            self.calls.append(("artifacts", folder, artifact_path))

    run = Recorder()
    part = PrefixedRun(run, "vgg16_cub")
    part.log_metrics({"runtime_ms.saliency": 2.5}, step=3)
    part.log_artifact("a.png")
    part.log_artifacts("figures", "gad")
    assert run.calls == [("metrics", {"vgg16_cub.runtime_ms.saliency": 2.5}, 3), ("artifact", "a.png"),
                         ("artifacts", "figures", "gad")]
