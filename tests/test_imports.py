"""The import contracts of pyproject.toml (``[tool.importlinter]``) hold: packages import only the layers
below them, no two modules or packages of one package import each other round in a circle, and only
``evals.outbound`` reaches a provider. ``.ci/run`` runs ``lint-imports`` too; this keeps ``pytest`` alone
from passing over a circle. Imports inside functions and under ``TYPE_CHECKING`` count.

import-linter runs in a child process: its entry point reconfigures logging (disabling every logger it
did not set up), which would silence the warnings later tests read.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evals

ROOT = Path(evals.__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
_LINT = (
    "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"
)

if importlib.util.find_spec("importlinter") is None:  # the `test` extra installs it
    if os.environ.get("CI"):
        raise RuntimeError("import-linter is not installed, and CI must check the import contracts")
    pytest.skip("import-linter is not installed (pip install -e '.[test]')", allow_module_level=True)
if not PYPROJECT.exists():
    pytest.skip("evals is installed, not a checkout: no pyproject.toml beside it", allow_module_level=True)


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the ``evals`` package in ``tree``, with the contracts of ``tree/pyproject.toml``."""
    return subprocess.run(
        [sys.executable, "-c", _LINT],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_import_contracts() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


# A shortcut back up the layers where a plain reading of the module's top would not see it.
_IN_A_FUNCTION = "\n\ndef _shortcut():\n    from evals.cli import main\n\n    return main\n"
_TYPE_CHECKING = "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from evals.cli import main\n"


@pytest.mark.parametrize("planted", [_IN_A_FUNCTION, _TYPE_CHECKING], ids=["in a function", "type checking"])
def test_an_import_back_up_is_caught_wherever_it_hides(tmp_path: Path, planted: str) -> None:
    """A copy of the package with ``evals.records`` importing the CLI: a layer broken and a circle made."""
    shutil.copytree(ROOT / "evals", tmp_path / "evals", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    records = tmp_path / "evals" / "records.py"
    records.write_text(records.read_text(encoding="utf-8") + planted, encoding="utf-8")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Packages import only the layers below them BROKEN" in done.stdout
    assert "No circle between the modules and packages of any package BROKEN" in done.stdout
    assert "evals.records is not allowed to import evals.cli" in done.stdout


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("judge/cache_key.py", "\n\ndef _back():\n    from evals.judge import judging\n\n    return judging\n"),
        ("outbound/normalise.py", "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from evals.outbound import redaction\n"),
    ],
    ids=["in a function", "type checking"],
)  # fmt: skip
def test_a_circle_inside_one_package_is_caught(tmp_path: Path, module: str, planted: str) -> None:
    """Two modules of one package (one layer) importing each other, the way back hidden: no layer is broken,
    the circle is."""
    shutil.copytree(ROOT / "evals", tmp_path / "evals", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    path = tmp_path / "evals" / module
    path.write_text(path.read_text(encoding="utf-8") + planted, encoding="utf-8")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Packages import only the layers below them KEPT" in done.stdout
    assert "No circle between the modules and packages of any package BROKEN" in done.stdout
