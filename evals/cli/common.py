"""What every command shares: consoles, options, exit codes, and terminal-safe text."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from evals.config import Config

EXIT_OK, EXIT_NO, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = (
    "\b\nExit codes:\n  0  done\n  1  suite has problems (validate), or a regression (report --fail-on-regression)\n"
    "  2  could not run: bad config, suite, rubric, arguments or run id, or the model never answered\n"
    "  130  interrupted (resume with --resume)"
)

GATE_EXIT_HELP = "\b\nExit codes:\n  0  pass\n  1  fail\n  2  cannot decide (missing runs, different suites or judges, too few pairs)"

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None,
    help="Config file (default: ./evals.yaml; built-in defaults when absent).",
)  # fmt: skip
reports_option = click.option(
    "--reports", "reports_dir", type=click.Path(path_type=Path), default=None,
    help="Reports folder holding evals.db and runs/ (default: reports/ beside the config).",
)  # fmt: skip


def plain(text: str) -> Text:
    """Text safe for the terminal: no rich markup, no control characters (names can come from servers)."""
    return Text("".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in text))


def reports_path(config: Config, reports_dir: Path | None) -> Path:
    return reports_dir if reports_dir is not None else config.path(config.reports_dir)


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for a terminal table; an en dash when there is none."""
    return "–" if value is None else format(value, spec)
