"""``evals init``: write a new project's files from the package's templates, never overwriting one."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evals.defaults import DEPLOY_RECIPES, EXAMPLE_CONFIG, PROJECT_TEMPLATE, SHIPPED_JUDGES
from evals.errors import EvalsError

# Package data globs skip dotted names, so the templates keep them undotted; init puts the dot back.
_DOTTED = {"gitignore": ".gitignore", "github": ".github"}
# ``evals init --deploy NAME``: the recipe's folder in DEPLOY_RECIPES, and where its files go in the project.
DEPLOY_TARGETS = {"kubernetes": Path("deploy", "kubernetes"), "actions": Path()}


@dataclass
class InitResult:
    """What ``init_project`` did, each path relative to the project folder."""

    root: Path
    created: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    """Files that were already there (left as they are)."""


def _tree(folder: Path, into: Path = Path()) -> Iterator[tuple[Path, Path]]:
    for source in sorted(folder.rglob("*")):
        relative = source.relative_to(folder)
        if source.is_file() and "__pycache__" not in relative.parts:
            first = _DOTTED.get(relative.parts[0], relative.parts[0])
            yield into / Path(first, *relative.parts[1:]), source


def project_files(deploy: Sequence[str] = ()) -> Iterator[tuple[Path, Path]]:
    """(path in the new project, template file) for every file ``evals init`` writes, in a stable order;
    ``deploy``: names in ``DEPLOY_TARGETS`` whose recipes it adds."""
    yield Path("evals.yaml"), EXAMPLE_CONFIG
    yield Path("judges") / "correctness.yaml", SHIPPED_JUDGES / "correctness.yaml"
    yield from _tree(PROJECT_TEMPLATE)
    for name in deploy:
        yield from _tree(DEPLOY_RECIPES / name, DEPLOY_TARGETS[name])


def init_project(root: Path, deploy: Sequence[str] = ()) -> InitResult:
    """Write the project files (and the ``deploy`` recipes) into ``root`` (created if needed); a file that
    exists is skipped, not touched."""
    result = InitResult(root)
    files = list(project_files(deploy))
    # Every folder first: a file where a folder should be stops init before it has written anything.
    for relative, _ in files:
        target = root / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvalsError(f"{target}: cannot write it: {exc.strerror or exc}") from None
    for relative, source in files:
        target = root / relative
        try:
            content = source.read_bytes()
        except OSError as exc:
            raise EvalsError(
                f"{source}: cannot read the template ({exc.strerror or exc}); reinstall lookingglass"
            ) from None
        try:
            # "x": create only; an existing file (or a symlink, even a dangling one) is never written through.
            with target.open("xb") as out:
                out.write(content)
        except FileExistsError:
            result.skipped.append(relative)
        except OSError as exc:
            raise EvalsError(f"{target}: cannot write it: {exc.strerror or exc}") from None
        else:
            result.created.append(relative)
    return result


def relative_to_cwd(path: Path) -> str:
    """``path`` as the user would type it from here (absolute when it is elsewhere)."""
    absolute = path.resolve()
    here = Path.cwd().resolve()
    return os.path.relpath(absolute, here) if absolute.is_relative_to(here) else str(absolute)
