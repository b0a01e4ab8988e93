"""The import graph of xaibench's own modules: no circle, and every import at the top of
its module except lazy imports of heavy third-party libraries, each marked ``# lazy``."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imported(node) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return []


def import_graph() -> dict[str, set[str]]:
    """module -> the xaibench modules it imports explicitly (a package's own ``__init__``
    is not counted as imported by its submodules: Python runs it first, whatever they import)."""
    known = modules()
    graph = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            for target in imported(node):
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target.startswith("xaibench") and target != name:
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_circles_are_found_by_the_checker():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_xaibench_modules():
    assert circles(import_graph()) == []


def test_imports_inside_functions_are_marked_lazy_third_party_ones():
    stdlib = set(sys.stdlib_module_names)
    unmarked = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            root = imported(node)[0].split(".")[0]
            # the marked line, or the first of a group of imports the mark covers
            above = lines[max(0, node.lineno - 4):node.end_lineno]
            group = [line for line in above if line.strip().startswith(("from ", "import "))]
            if root == "xaibench" or root in stdlib or not any("# lazy" in line for line in group):
                unmarked.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not unmarked, f"move these imports to the top of their module, or mark a heavy library # lazy: {unmarked}"


def test_loading_the_params_imports_no_torchvision():
    """Every stage loads the params first; torchvision imports torch._dynamo (1.5 s here), which
    only the stages that build a torchvision model, augment or explain with zennit need."""
    code = ("import sys, xaibench.params; "
            "print(sorted(m for m in ('torchvision', 'torch._dynamo', 'zennit', 'captum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_stage_start_imports_neither_the_compiler_nor_an_explainer_library():
    """What every stage does first (validate the default params, which asks each method
    whether it refuses the study's net; set up threads, seeds, determinism) imports neither
    TorchInductor/Dynamo (``torch.use_deterministic_algorithms`` imports them: 1.5 s) nor
    captum (0.7 s), and leaves deterministic algorithms on, warn-only."""
    code = ("import sys, torch; from xaibench.params import load_params; "
            "from xaibench.stage_setup import setup_stage; setup_stage(load_params().seed); "
            "print(sorted(m for m in ('torch._inductor', 'torch._dynamo', 'captum', 'zennit') if m in sys.modules), "
            "torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=SRC.parent).stdout
    assert out.strip() == "[] True True"
