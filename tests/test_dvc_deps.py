"""dvc.yaml lists the code each stage runs: every xaibench module a stage script imports
is under one of that stage's deps, so changing it (a params default, the seeding, the
way outputs are written) reruns the stage."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Imported by the stages but writing nothing that DVC tracks (MLflow's store is not an output).
OUTPUT_FREE = {"xaibench.tracking": "MLflow logging only",
               "xaibench.process_exit": "ends the process once its outputs are written"}


def imported_modules(script: Path) -> set[str]:
    """The xaibench modules a script imports directly: ``from xaibench.a import b`` is the
    module ``xaibench.a.b`` where that file exists, else ``xaibench.a``."""
    modules = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xaibench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                modules.add(sub if module_file(sub).exists() else node.module)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.startswith("xaibench"))
    return modules


def module_file(module: str) -> Path:
    """``xaibench.a.b`` -> src/xaibench/a/b.py, or its package's __init__.py."""
    path = SRC.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def covered(module: str, deps: list[str]) -> bool:
    target = module_file(module).relative_to(ROOT).as_posix()
    return any(target == dep or target.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_definitions() -> list:
    """(stage, its script, its deps) for every stage; templated deps (``${item.kind}``) are
    left out, so a study kind's module counts as covered only where it is named."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        deps = [str(d) for d in body["deps"] if "${" not in str(d)]
        scripts = [d for d in deps if d.startswith("stages/")]
        assert len(scripts) == 1, f"stage {name}: expected one stage script among its deps"
        found.append(pytest.param(name, ROOT / scripts[0], deps, id=name))
    return found


def test_a_stage_imported_module_resolves_to_its_file():
    modules = imported_modules(ROOT / "stages" / "attribute.py")
    assert "xaibench.params" in modules
    assert module_file("xaibench.params") == SRC / "xaibench" / "params.py"
    assert covered("xaibench.params", ["src/xaibench/params.py"])
    assert covered("xaibench.data.download", ["src/xaibench/data"])
    assert not covered("xaibench.data.download", ["src/xaibench/dat"])


@pytest.mark.parametrize("stage, script, deps", stage_definitions())
def test_every_module_a_stage_imports_is_among_its_deps(stage, script, deps):
    missing = sorted(m for m in imported_modules(script) - OUTPUT_FREE.keys() if not covered(m, deps))
    files = [module_file(m).relative_to(ROOT).as_posix() for m in missing]
    assert not missing, f"dvc.yaml stage {stage!r}: add {files} to its deps"


def test_no_stage_depends_on_another_datasets_folder():
    """``dvc repro reliability@<study>`` runs that study's chain only: a stage that reads a
    dataset's folders names the one it reads (``data/prepared/${item.dataset}``), never
    the whole ``data/prepared`` (every dataset's download and preprocess)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    # the report reads every study's outputs; gad_support, gad_attribute and gad_reliability span
    # the GAD grid, whose datasets are a params list (dvc.yaml cannot list one dep per entry)
    for name, stage in stages.items():
        if name in ("report", "gad_support", "gad_attribute", "gad_reliability"):
            continue
        for dep in stage.get("do", stage)["deps"]:
            for shared in ("data/prepared", "data/cues", "data/raw", "data/attributions", "data/models"):
                assert str(dep).rstrip("/") != shared, f"stage {name}: depends on all of {shared}"
