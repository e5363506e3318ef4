"""What the package ships: the default rubrics, the demo suite, an example ``evals.yaml``, ``evals init``'s files,
and the reference docs that ``evals docs`` shows.

Everything here is package data, found through ``importlib.resources`` so that it works from any folder
after a ``pip install``, not only inside a source checkout. lookingglass is installed as plain files (the
suite and rubric loaders read folders), so each location is a ``Path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

ROOT = Path(str(files(__name__)))
"""The folder of this package."""
SHIPPED_JUDGES = ROOT / "judges"
"""The shipped rubrics (``correctness``): the last place a rubric name is looked up."""
DEMO_SUITE = ROOT / "suites" / "demo"
"""The demo suite that ``evals demo`` runs (54 short questions over 6 areas)."""
EXAMPLE_CONFIG = ROOT / "evals.yaml"
"""A commented example ``evals.yaml``; ``evals init`` writes it into a new project."""
PROJECT_TEMPLATE = ROOT / "project"
"""The other files ``evals init`` writes: example suites, CI workflows, .gitignore (dotted names undotted)."""
DEPLOY_RECIPES = ROOT / "deploy"
"""What ``evals init --deploy NAME`` adds: ``kubernetes/`` (to ``deploy/kubernetes/``) and ``actions/`` (to the
project's root: ``.github/workflows/workers.yml``), each starting ``evals worker`` processes."""


@dataclass(frozen=True)
class DocTopic:
    """One page of the reference docs (``docs/<name>.md`` in this package)."""

    name: str
    """What ``evals docs NAME`` takes: the file name without ``.md``."""
    title: str
    """The page's first heading, its one-line summary."""
    text: str
    """The whole page, Markdown."""


def doc_topics() -> dict[str, DocTopic]:
    """The reference docs by name, in name order, read through ``importlib.resources`` (works from a wheel)."""
    found: dict[str, DocTopic] = {}
    pages = [page for page in files(__name__).joinpath("docs").iterdir() if page.name.endswith(".md")]
    for page in sorted(pages, key=lambda page: page.name):
        text = page.read_text(encoding="utf-8")
        name = page.name.removesuffix(".md")
        heading = next((line for line in text.splitlines() if line.startswith("# ")), f"# {name}")
        found[name] = DocTopic(name=name, title=heading.removeprefix("# ").strip(), text=text)
    return found
