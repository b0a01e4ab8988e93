"""The documentation: every how-to recipe runs as written, `mkdocs build --strict` passes,
and the built site's pages open in a real browser without console errors or broken links."""

from __future__ import annotations

import copy
import importlib
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOW_TO = sorted((ROOT / "docs" / "how-to").glob("*.md"))


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order, but snippet includes (shown from a file the
    rest of the suite tests)."""
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    return [b for b in blocks if "--8<--" not in b]


@pytest.fixture
def registries():
    """Every registry as it was, and the params schema rebuilt from it, after the test."""
    from xaibench.data import DATASETS
    from xaibench.explain import METHODS
    from xaibench.metrics import METRIC_INFO, METRICS
    from xaibench.studies import STUDY_KINDS

    tables = (DATASETS, METHODS, METRIC_INFO, METRICS, STUDY_KINDS)
    saved = [copy.copy(t) for t in tables]
    yield
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)
    import xaibench.params

    importlib.reload(xaibench.params)


def test_every_how_to_page_has_a_recipe():
    assert {p.stem for p in HOW_TO} == {"add-a-method", "add-a-metric", "add-a-dataset", "add-a-study-kind"}
    assert all(python_blocks(p) for p in HOW_TO)


@pytest.mark.parametrize("page", HOW_TO, ids=lambda p: p.stem)
def test_the_recipe_runs_as_written(page, registries, monkeypatch):
    monkeypatch.chdir(ROOT)                     # recipes read params.yaml like a user in the project
    module = types.ModuleType(f"recipe_{page.stem.replace('-', '_')}")   # as the module the page describes
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in python_blocks(page):
        exec(compile(block, str(page), "exec"), module.__dict__)  # noqa: S102 - the page's own code, on purpose


def build_site(out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    built = build_site(out)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_mkdocs_build_strict_passes_and_generates_the_pages_from_the_code(site):
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    assert {"index.html", "reference/params.html", "reference/registries.html", "fidelity.html",
            "results/catsdogs.html", "how-to/add-a-method.html"} <= pages
    registries = (site / "reference" / "registries.html").read_text()
    assert "occlusion" in registries and "OcclusionParams" in registries     # read from the registry
    params = (site / "reference" / "params.html").read_text()
    assert "num_samples" in params and "deletion_fill" in params


def test_the_results_pages_show_the_committed_numbers(site):
    import json

    committed = json.loads((ROOT / "metrics" / "catsdogs.json").read_text())
    page = (site / "results" / "catsdogs.html").read_text()
    assert f"{committed['lrp']['DAUC']:.4g}" in page and "Reliability verdict" in page


def test_the_built_site_opens_without_console_errors_or_broken_links(site, browser, serve):
    origin = serve(site)
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.name != "404.html")
    broken, errors = [], {}
    for name in pages:
        page = browser.new_page()
        seen = []
        page.on("console", lambda m, seen=seen: seen.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e, seen=seen: seen.append(str(e)))
        response = page.goto(f"{origin}/{name}", wait_until="load")
        assert response is not None and response.ok, name
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            target, fragment = urldefrag(urljoin(f"{origin}/{name}", href))
            if not target.startswith(origin):
                continue                              # external: not fetched (no network here)
            path = site / target[len(origin) + 1:]
            if not path.is_file():
                broken.append(f"{name} -> {href}")
            elif fragment and path.suffix == ".html" and f'id="{fragment}"' not in path.read_text():
                broken.append(f"{name} -> {href} (no such anchor)")
        if seen:
            errors[name] = seen
        page.close()
    assert len(pages) >= 30
    assert not broken, broken
    assert not errors, errors
