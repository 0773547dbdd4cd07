"""The package's import graph: ``model/`` is pure (nn.Modules only) and no module cycle exists.

Walks every module's source with ``ast`` (imports inside functions count too: a cycle hidden in a
function is still a cycle), so the check needs neither torch nor napari to be importable.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "napari_unetv2"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def resolve(base: str, level: int, name: str | None, is_package: bool) -> str:
    parts = base.split(".")
    if not is_package:
        parts = parts[:-1]  # a module's relative imports start from its package
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([name] if name else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports (a ``from pkg import sub`` counts as an edge to ``pkg.sub``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            found.update(t for t in targets if t.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, node.level, node.module, is_package) if node.level else (node.module or "")
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {t for t in found if t in modules and t != name}


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_model_package_imports_nothing_else_of_the_package():
    edges = graph()
    offenders = {
        (src, dst)
        for src, targets in edges.items()
        if src == f"{PACKAGE}.model" or src.startswith(f"{PACKAGE}.model.")
        for dst in targets
        if not (dst == f"{PACKAGE}.model" or dst.startswith(f"{PACKAGE}.model."))
    }
    assert not offenders, f"model/ must hold nn.Modules only; it imports: {sorted(offenders)}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in edges}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(edges[node]):
            if colour[nxt] == GREY:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == WHITE:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(edges):
        if colour[node] == WHITE:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    # The check itself can fail: a hidden function-level cycle like the one model/ once had is caught.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_count(tmp_path):
    source = "def f():\n    from ..checkpoints import load_checkpoint\n"
    path = tmp_path / "unetv2.py"
    path.write_text(source)
    modules = {f"{PACKAGE}.model.unetv2": path, f"{PACKAGE}.checkpoints": path}
    assert imports_of(f"{PACKAGE}.model.unetv2", path, modules) == {f"{PACKAGE}.checkpoints"}


def test_opening_a_correction_set_loads_neither_torch_nor_the_training_engine():
    import subprocess
    import sys

    code = ("import sys; from napari_unetv2.corrections import CorrectionSet; "
            "print(sorted(m for m in ('torch', 'napari_unetv2.engine.data', 'napari_unetv2.engine.loop') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
