"""Stage scripts run directly (``python stages/<stage>.py``, ``make report``) end a bad
argument, bad params or bad input in one line that says what to do, as ``dvc repro``
does; each stage's output folders are all-or-nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xaibench.atomic import atomic_outputs

ROOT = Path(__file__).resolve().parents[1]


def run_script(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / args[0]), *args[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("args, message", [
    (("train.py", "catdogs"), "studies: no study 'catdogs' (declared: ['catsdogs'"),
    (("preprocess.py", "mnist"), "datasets: no dataset 'mnist'"),
    (("train.py",), "usage: python stages/train.py <study>"),
    (("step.py", "gad", "support", "four"), "bad argument alpha='four'"),
    (("train.py", "gad"), "gad is a grid study: give one of its cells (resnet18_catsdogs"),
    (("train.py", "gad", "resnet18_dogs"), "gad: no cell 'resnet18_dogs'"),
    (("step.py", "catsdogs", "support", "4"), "has no step 'support' (its steps: none)"),
])
def test_a_wrong_argument_is_one_line(tmp_path, args, message):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert message in one_error_line(run_script(tmp_path, *args))


@pytest.mark.parametrize("script", [("train.py", "catsdogs"), ("report.py",)])
def test_a_yaml_error_is_one_line_naming_file_and_line(tmp_path, script):
    (tmp_path / "params.yaml").write_text("seed: 0\nstudies: {catsdogs: [\n")
    line = one_error_line(run_script(tmp_path, *script))
    assert "params.yaml: line 3, column 1: not valid YAML" in line


def test_a_study_not_asked_to_retrain_gets_its_note_without_torch_and_a_misspelt_one_is_named(tmp_path):
    """seeds@<study> of a study not in reliability.seeds.studies writes its note before any
    heavy import (-X importtime lists no torch); a study that does not exist still goes
    through the params' validation and its one-line error."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "stages/seeds.py"), "senn_cifar10"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch" not in {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()}
    note = json.loads((tmp_path / "metrics/senn_cifar10_seeds.json").read_text())
    assert note["checked"] is False and "reliability.seeds.studies" in note["reason"]
    assert "studies: no study 'catdogs'" in one_error_line(run_script(tmp_path, "seeds.py", "catdogs"))


def test_a_malformed_metrics_file_names_itself_in_the_report(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/catsdogs.json").write_text('{"lrp": {"IAUC": 0.5,\n')
    line = one_error_line(run_script(tmp_path, "report.py", "--out", "reports_x"))
    assert "metrics/catsdogs.json: not valid JSON (Expecting" in line and "rerun the stage" in line
    assert not (tmp_path / "reports_x").exists()


def test_a_corrupt_store_file_is_named(tmp_path):
    from xaibench.store import StoreError, iter_attributions, read_attributions

    (tmp_path / "lrp.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match=r"lrp.parquet: not a readable Parquet file .*rerun the attribute stage"):
        read_attributions(tmp_path / "lrp.parquet")
    with pytest.raises(StoreError, match="lrp.parquet: not a readable Parquet file"):
        next(iter_attributions(tmp_path / "lrp.parquet", 4))


def test_a_failing_stage_leaves_its_previous_complete_output_set(tmp_path):
    first, second = tmp_path / "attributions", tmp_path / "plots"
    with atomic_outputs(first, second):
        (first / "lrp.parquet").write_text("old lrp")
        (first / "lime.parquet").write_text("old lime")
        (second / "curve.csv").write_text("old")
    with pytest.raises(OSError, match="No space left"):
        with atomic_outputs(first, second):
            (first / "lrp.parquet").write_text("new lrp")          # one method done, then the disk is full
            raise OSError(28, "No space left on device")
    assert sorted(p.name for p in first.iterdir()) == ["lime.parquet", "lrp.parquet"]
    assert (first / "lrp.parquet").read_text() == "old lrp" and (second / "curve.csv").read_text() == "old"
    assert not list(tmp_path.glob(".*prev-*"))
    with atomic_outputs(first, second):                             # success: only the new set
        (first / "gradcam.parquet").write_text("new")
    assert [p.name for p in first.iterdir()] == ["gradcam.parquet"] and not list(second.iterdir())


def test_a_killed_stages_previous_set_is_restored_on_the_next_run(tmp_path):
    folder = tmp_path / "attributions"
    (tmp_path / ".attributions.prev-999").mkdir()                  # what kill -9 mid-stage leaves
    (tmp_path / ".attributions.prev-999" / "lrp.parquet").write_text("complete")
    folder.mkdir()
    (folder / "half.parquet").write_text("partial")
    with pytest.raises(RuntimeError):
        with atomic_outputs(folder):
            raise RuntimeError("fails again")
    assert [p.name for p in folder.iterdir()] == ["lrp.parquet"] and not list(tmp_path.glob(".*prev-*"))
