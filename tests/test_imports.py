"""The package's layers hold (pyproject.toml [tool.importlinter], docs/architecture.md): no
module imports from a layer above its own, type-only imports included, and no two
modules of one folder import each other, checked by import-linter (``lint-imports``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def _lint(cwd: Path, env_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(env_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_and_folders_have_no_upward_import_and_no_cycle():
    r = _lint(REPO, REPO / "src")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_the_contract_catches_an_upward_type_only_import(tmp_path):
    """The same contract on a copy of the package with one ``TYPE_CHECKING`` import of the
    CLI from a model: lint-imports fails and names it."""
    import shutil

    shutil.copytree(REPO / "src" / "alexnet", tmp_path / "src" / "alexnet")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    paper = tmp_path / "src" / "alexnet" / "models" / "owt.py"
    paper.write_text(
        paper.read_text()
        + textwrap.dedent("""
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from alexnet.cli import main  # noqa: F401
            """)
    )
    r = _lint(tmp_path, tmp_path / "src")
    assert r.returncode == 1
    assert "alexnet.models.owt -> alexnet.cli" in r.stdout


def test_the_top_of_the_package_holds_only_the_base_modules():
    """Issue 23's tree: the folders are the layers, and the few modules beside them are the
    base layer of the contract (each named there), at most ten."""
    import tomllib

    top = sorted(
        p.stem
        for p in (REPO / "src" / "alexnet").glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )
    linter = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = linter["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in layer.split(":")}
    assert len(top) <= 10, top
    assert set(top) <= named, set(top) - named
