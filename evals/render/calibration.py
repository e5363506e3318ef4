"""The calibration report as files: ``calibration.json`` (the typed record) and ``calibration.html``.

The page is rendered by jinja2 with autoescaping (labelled answers and the judge's reasons are untrusted
text) and a Content-Security-Policy that allows no script and no network request.
"""

from __future__ import annotations

from pathlib import Path

from evals.files import write_atomic
from evals.render.pages import _environment
from evals.trust.calibration import Calibration


def render_calibration_html(calibration: Calibration) -> str:
    """The calibration as one self-contained HTML page, its confusion matrix a shaded table."""
    return _environment().get_template("calibration.html.j2").render(cal=calibration)


def write_calibration(calibration: Calibration, folder: Path) -> dict[str, Path]:
    """Write ``calibration.json`` and ``calibration.html`` into ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "calibration.json", "html": folder / "calibration.html"}
    write_atomic(paths["json"], calibration.model_dump_json(indent=2))
    write_atomic(paths["html"], render_calibration_html(calibration))
    return paths
