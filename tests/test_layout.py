"""The shape of the package: no module grows past 600 lines, and the top of ``evals/`` stays a few core
modules (everything else lives in a package per capability)."""

import ast
from pathlib import Path

import evals

PACKAGE = Path(evals.__file__).parent
MAX_LINES = 600
MAX_TOP_MODULES = 15


def test_no_module_passes_600_lines():
    lines = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    too_long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines, split them: " + ", ".join(
        f"{name} ({n})" for name, n in too_long.items()
    )


def test_the_top_of_evals_holds_at_most_15_core_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= MAX_TOP_MODULES, (
        f"{len(top)} modules at the top of evals/, at most {MAX_TOP_MODULES}: {', '.join(top)}; "
        "move one into the package of its capability"
    )


def test_every_package_says_what_it_owns():
    """Each package's ``__init__`` opens with a docstring: where a feature lives is read there."""
    silent = sorted(
        str(init.parent.relative_to(PACKAGE.parent))
        for init in PACKAGE.rglob("__init__.py")
        if len(ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "") < 20
    )
    assert not silent, "give these packages a docstring saying what they own: " + ", ".join(silent)
