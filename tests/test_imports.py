"""No import cycles in ``smarthome``: neither between its modules nor between its packages;
and no test module imports another (what tests share lives in ``tests/helpers/`` or a conftest).

The graphs come from the source (``ast``), not from importing it: every ``import`` counts,
also one inside a function or under ``TYPE_CHECKING``, since a cycle that only lazy imports
keep from failing still ties the two modules to each other. A package here is a first-level
subpackage (``smarthome.training``); the modules directly in ``smarthome/`` (``cli``,
``config``, ``errors``) form the package ``smarthome``, which every stage may import and which
imports no stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "smarthome"
TESTS_DIR = Path(__file__).resolve().parent


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, a package named for its ``__init__.py``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``a.b.func`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``module``'s source imports, itself left out."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
            names = [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for name in names if (target := _known(name, modules)))
    found.discard(module)
    return found


def module_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def package_of(module: str, modules: dict[str, Path]) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and modules[module].name != "__init__.py"):
        return parts[0]
    return ".".join(parts[:2])


def package_graph(graph: dict[str, set[str]], modules: dict[str, Path]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {package_of(name, modules): set() for name in graph}
    for name, targets in graph.items():
        source = package_of(name, modules)
        packages[source].update(package_of(t, modules) for t in targets)
        packages[source].discard(source)
    return packages


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (depth-first, in name order)."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return path[path.index(target) :] + [target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done and (cycle := visit(node)):
            return cycle
    return None


def _why(cycle: list[str], graph: dict[str, set[str]], modules: dict[str, Path]) -> str:
    """For a package cycle: one module import behind each of its edges."""
    lines = []
    for source, target in zip(cycle, cycle[1:], strict=False):
        edge = next(
            f"{name} imports {t}"
            for name, targets in sorted(graph.items())
            for t in sorted(targets)
            if package_of(name, modules) == source and package_of(t, modules) == target
        )
        lines.append(f"  {source} -> {target}: {edge}")
    return "\n".join(lines)


def test_the_cycle_finder_finds_a_cycle_and_names_it() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_are_read_from_the_source(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "a.py").write_text(
        "from . import b\nfrom ..errors import Oops\n\n\ndef f():\n    import pkg.sub.b.thing\n"
    )
    (package / "sub" / "b.py").write_text("from pkg.sub import a\nimport os\n")
    modules = module_files(package)
    graph = module_graph(modules)
    assert graph == {
        "pkg": set(),
        "pkg.errors": set(),
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.a": {"pkg.sub.b", "pkg.errors"},
        "pkg.sub.b": {"pkg.sub.a"},
    }
    assert find_cycle(graph) == ["pkg.sub.b", "pkg.sub.a", "pkg.sub.b"]
    assert package_graph(graph, modules) == {"pkg": set(), "pkg.sub": {"pkg"}}


def test_no_import_cycle_between_modules() -> None:
    modules = module_files()
    assert len(modules) > 50, "the smarthome sources were not found"
    cycle = find_cycle(module_graph(modules))
    assert cycle is None, "import cycle between modules: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_packages() -> None:
    modules = module_files()
    graph = module_graph(modules)
    cycle = find_cycle(package_graph(graph, modules))
    assert cycle is None, (
        "import cycle between packages: "
        + " -> ".join(cycle or [])
        + "\n"
        + _why(cycle or [], graph, modules)
    )


def test_no_test_module_imports_another() -> None:
    modules = module_files(TESTS_DIR)
    graph = module_graph(modules)
    imports = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in targets
        if target.rpartition(".")[2].startswith("test_")
    )
    assert len(modules) > 40, "the test sources were not found"
    assert not imports, "move what they share to tests/helpers/: " + "; ".join(imports)
