"""The shape of the code: the pipeline and the service stand side by side on core/, which knows neither."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest

from pipeline.provenance import code_version_of

ROOT = Path(__file__).resolve().parent.parent
KERNEL_MAY_IMPORT = {"numpy", "pydantic", "typing_extensions", "core"}


def imported_packages(folder: str) -> dict[str, set[str]]:
    """Per module of ``folder``: the top-level packages it imports (anywhere in it, lazily too)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.relative_to(ROOT).as_posix()] = names
    return found


@pytest.mark.parametrize(("side", "other"), [("pipeline", "service"), ("service", "pipeline")])
def test_the_pipeline_and_the_service_never_import_each_other(side: str, other: str) -> None:
    offenders = sorted(module for module, names in imported_packages(side).items() if other in names)
    assert offenders == [], f"{side}/ modules importing {other}/: {offenders} (shared code goes to core/)"


def test_the_kernel_imports_only_the_standard_library_numpy_and_pydantic() -> None:
    allowed = KERNEL_MAY_IMPORT | set(sys.stdlib_module_names) | {"__future__"}
    extra = {module: sorted(names - allowed) for module, names in imported_packages("core").items() if names - allowed}
    assert extra == {}, f"core/ must know neither side nor heavy libraries: {extra}"


def copy_of_code(tmp_path: Path) -> Path:
    """The folders the code version reads, and those it must not read, in a throw-away tree."""
    for folder in ("pipeline", "core", "service"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def edit_docstring(path: Path) -> None:
    path.write_text(path.read_text() + '\n\n"""An edited docstring."""\n')


@pytest.mark.parametrize("edited", ["service/schemas.py", "pipeline/cli/history.py", "pipeline/cli/main.py"])
def test_editing_the_api_schemas_or_a_command_line_tool_reruns_no_task(tmp_path: Path, edited: str) -> None:
    root = copy_of_code(tmp_path)
    before = code_version_of(root)
    edit_docstring(root / edited)
    assert code_version_of(root) == before  # task ids carry the code version: same version, same tasks


@pytest.mark.parametrize("edited", ["core/contract.py", "core/intervals.py", "pipeline/train.py"])
def test_editing_what_shapes_results_changes_the_code_version(tmp_path: Path, edited: str) -> None:
    root = copy_of_code(tmp_path)
    before = code_version_of(root)
    edit_docstring(root / edited)
    assert code_version_of(root) != before


def internal_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from a.b import c`` counts ``a.b``, or ``a.b.c`` when
    that is a module itself), everywhere in the module, lazy imports included."""
    modules = {
        path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__"): path
        for folder in ("core", "pipeline", "service")
        for path in (ROOT / folder).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                             for a in node.names)  # fmt: skip
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
        graph[name] = found - {name}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    graph = internal_imports()
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:  # depth first; a module on the path again is a cycle
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == [], f"import cycles: {cycles[:3]}"
