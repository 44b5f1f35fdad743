"""The architecture's arrows, checked on the source: imports run transport -> scoring core ->
batcher -> engine, never back, and the serving side never reaches the compiler or training."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STDLIB = sys.stdlib_module_names


def imports(path: Path) -> set[str]:
    """Every module name a file imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def folder_imports(folder: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(REPO)): imports(path)
        for path in sorted((REPO / folder).rglob("*.py"))
        if "_pb2" not in path.name
    }


def offenders(folder: str, allowed: tuple[str, ...]) -> list[str]:
    """file: module pairs whose module is neither stdlib nor under an allowed prefix."""
    bad = []
    for file, modules in folder_imports(folder).items():
        for module in sorted(modules):
            top = module.split(".")[0]
            if top in STDLIB or top == "__future__":
                continue
            if not any(module == prefix or module.startswith(prefix + ".") for prefix in allowed):
                bad.append(f"{file}: {module}")
    return bad


def test_the_engine_imports_numpy_and_the_standard_library_only() -> None:
    assert offenders("engine", ("numpy", "forestgate.engine", "forestgate.errors")) == []


BATCHER_FILES = ("server/batcher.py", "server/shedding.py")


def test_the_batcher_knows_nothing_of_grpc_or_protobuf() -> None:
    allowed = ("numpy", "forestgate.engine", "forestgate.errors", "forestgate.server.shedding")
    bad = [o for o in offenders("server", allowed) if o.startswith(BATCHER_FILES)]
    assert bad == []


@pytest.mark.parametrize("forbidden", ["forestgate.compiler", "forestgate.training"])
def test_the_server_never_imports_the_compiler_or_training(forbidden: str) -> None:
    bad = [
        f"{file}: {module}"
        for file, modules in folder_imports("server").items()
        for module in modules
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert bad == []


def test_the_payments_core_is_pure() -> None:
    allowed = ("numpy", "yaml", "forestgate.payments", "forestgate.errors")
    assert offenders("payments", allowed) == []


def test_the_compiler_never_imports_the_server() -> None:
    bad = [
        f"{file}: {module}"
        for file, modules in folder_imports("compiler").items()
        for module in modules
        if module.startswith(("forestgate.server", "grpc"))
    ]
    assert bad == []


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\ndef f():\n    from forestgate.compiler import codegen\n")
    assert imports(probe) == {"os", "forestgate.compiler"}
