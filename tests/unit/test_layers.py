"""The package's floors (pyproject.toml [tool.importlinter]) hold, can be broken, and no module
imports itself round a circle; only cli.py parses arguments and nothing reads the environment at
import."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT_ROOT / "build"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(python_path: Path | None = None, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(python_path)} if python_path else None
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_are_kept():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_in_a_scratch_copy_is_reported(tmp_path):
    copy = tmp_path / "hpsforge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "locks" / "kinds.py", "a", encoding="utf-8") as module:
        module.write("\nfrom hpsforge.images import graph  # an upward import: locks below images\n")
    result = _lint_imports(python_path=tmp_path, cwd=tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "hpsforge.locks.kinds -> hpsforge.images.graph" in result.stdout


def _cycle(imports: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the modules, or None."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(imports.get(module, ())):
            if state.get(imported) == 1:
                return path[path.index(imported) :] + [imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(imports):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_itself_round_a_circle():
    graph = grimp.build_graph("hpsforge")
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert _cycle(imports) is None, " -> ".join(_cycle(imports) or [])


def _module_level_environment_reads(source: str) -> list[int]:
    """Lines that read os.environ / os.getenv outside any function: at import."""
    found = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if (
                not nested
                and isinstance(child, ast.Attribute)
                and isinstance(child.value, ast.Name)
                and child.value.id == "os"
                and child.attr in ("environ", "getenv")
            ):
                found.append(child.lineno)
            walk(child, nested)

    walk(ast.parse(source), False)
    return found


def test_the_environment_check_sees_a_read_at_import():
    assert _module_level_environment_reads("import os\nCACHE = os.environ.get('X')\n") == [2]
    assert _module_level_environment_reads("import os\ndef cache():\n    return os.environ.get('X')\n") == []


def test_no_module_reads_the_environment_at_import():
    readers = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _module_level_environment_reads(path.read_text(encoding="utf-8")))
    }
    assert readers == {}


def test_only_cli_parses_command_line_arguments():
    parsers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "argparse"
        in {
            alias.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(name=node.module or "")])
        }
    )
    assert parsers == ["cli.py"]
