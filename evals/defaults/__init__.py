"""What the package ships: the default rubrics, the demo suite, an example ``evals.yaml``, ``evals init``'s files.

Everything here is package data, found through ``importlib.resources`` so that it works from any folder
after a ``pip install``, not only inside a source checkout. lookingglass is installed as plain files (the
suite and rubric loaders read folders), so each location is a ``Path``.
"""

from __future__ import annotations

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
