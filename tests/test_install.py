"""A plain `pip install` of the repository (core dependencies only, not editable) into a fresh
virtual environment gives a working `forestgate` that inspects a bundle from its own site-packages,
without any training framework or the compiler installed: what a serving image holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Left out of the copy that is installed: environments, caches and build output of this checkout.
NOT_SOURCE = {
    ".venv",
    ".git",
    "build",
    "dist",
    "forestgate.egg-info",
    ".hypothesis",
    "models",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
        check=False,
    )


def not_source(folder: str, names: list[str]) -> set[str]:
    skip = {name for name in names if name == "__pycache__"}
    if Path(folder) == REPO:
        skip |= NOT_SOURCE & set(names)
    return skip


def base_python() -> str:
    base = getattr(sys, "_base_executable", None) or shutil.which("python3.11")
    assert base, "no base Python 3.11 to create a virtual environment with"
    return base


@pytest.mark.slow
def test_plain_install_inspects_a_bundle_without_the_training_stack(
    tmp_path: Path, reference_bundle: Path
) -> None:
    # pip builds a local project in place; installing a copy keeps its build/ and egg-info out
    # of the shared checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=not_source)
    venv = tmp_path / "venv"
    created = run(base_python(), "-m", "venv", venv, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python, entry_point = venv / "bin" / "python", venv / "bin" / "forestgate"

    installed = run(python, "-m", "pip", "install", "--quiet", source, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    help_text = run(entry_point, "--help", cwd=tmp_path)
    assert help_text.returncode == 0, help_text.stderr
    assert "compile" in help_text.stdout
    assert "inspect" in help_text.stdout

    inspect = run(entry_point, "inspect", reference_bundle, cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout.splitlines()[-1].startswith("self-check: ok")

    probe = run(
        python,
        "-c",
        (
            "import importlib.util, sysconfig\n"
            "from importlib import resources\n"
            "import forestgate.engine.model as runtime\n"
            "print(runtime.__file__)\n"
            "print(sysconfig.get_paths()['purelib'])\n"
            "print(resources.files('forestgate.compiler').joinpath('shim.c').is_file())\n"
            "print(*[m for m in ('xgboost', 'lightgbm', 'sklearn', 'treelite', 'scipy')"
            " if importlib.util.find_spec(m)])\n"
            # The whole server, decisions included, imports without the optional extras.
            "import forestgate.server.app\n"
            "print(*[m for m in ('redis', 'mlflow') if importlib.util.find_spec(m)])"
        ),
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    runtime_file, site_packages, has_shim, training_stack, extras = probe.stdout.split("\n")[:5]
    assert Path(runtime_file).is_relative_to(site_packages), runtime_file
    assert Path(site_packages).is_relative_to(venv)
    assert not Path(runtime_file).resolve().is_relative_to(REPO)
    assert has_shim == "True"  # the compiler's C shim ships with the package
    assert training_stack == ""
    assert extras == ""  # and forestgate.server.app imported without them

    compile_ = run(entry_point, "compile", "model.json", "--name", "m", "--version", "1",
                   "--repository", tmp_path / "repo", cwd=tmp_path)  # fmt: skip
    assert compile_.returncode == 2
    assert "pip install 'forestgate[compile]'" in compile_.stderr, compile_.stderr
