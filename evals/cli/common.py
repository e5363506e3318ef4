"""What every command shares: consoles, options, exit codes, and terminal-safe text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from evals.render.terminal import SafeLogHandler, visible
from evals.render.terminal import plain as plain

if TYPE_CHECKING:  # evals.config loads pydantic: `evals --help` reads this module without it
    from evals.config import Config

EXIT_OK, EXIT_NO, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = (
    "\b\nExit codes:\n  0  done\n"
    "  1  the answer is no, and only that: a suite has problems (validate), a regression\n"
    "     (report --fail-on-regression), the gate fails, a judge below --min-kappa (judge calibrate),\n"
    "     a tampered or missing audit record (audit verify)\n"
    "  2  could not run: bad config, suite, rubric, name or arguments, the model never answered, the\n"
    "     judge's first verdicts all unparseable, a run that ended with no score at all, or an\n"
    "     unexpected failure (unwritable file, full disk, damaged store): one line; --debug adds the traceback\n"
    "  130  interrupted (resume with --resume)"
)

GATE_EXIT_HELP = (
    "\b\nExit codes:\n  0  pass\n  1  fail\n"
    "  2  cannot decide (missing runs, the same run twice, different suites or judges, too few pairs,\n"
    "     the judge's drift canary moved, a judge not calibrated as gate: require_calibration asks),\n"
    "     or could not finish (unwritable --junit or step summary, damaged store, a failing area that\n"
    "     could not be confirmed)"
)


class _Console(Console):
    """A console whose reader hanging up (``evals report | head -1``) ends the command with 2, not 1."""

    def on_broken_pipe(self) -> None:
        # rich exits 1 here, which a CI would read as a decided "no" (a failed gate, a regression).
        try:
            super().on_broken_pipe()
        except SystemExit:
            raise SystemExit(EXIT_ERROR) from None


# Data is never markup: strings printed here are not parsed for [tags] or :emoji: codes. Untrusted text
# still goes through ``plain`` so that control characters are shown, not sent to the terminal.
out = _Console(highlight=False, markup=False, emoji=False)
# soft_wrap: an error or warning stays one line however long (a log reader or a CI grep sees it whole).
err = _Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def print_markdown(text: str, raw: bool = False) -> None:
    """Markdown for whoever reads stdout: rendered by rich on a terminal (headings, bold, tables drawn, no
    backslash escapes); the Markdown itself when stdout is a pipe or a file (CI logs, PR comments) or when
    ``raw`` (``--markdown``). Names in ``text`` are already inert Markdown (``md_text``), and every control
    character is shown as an escape either way."""
    from rich.markdown import Markdown  # markdown-it, loaded only by the commands that print Markdown

    if raw or not out.is_terminal:
        # soft_wrap: a table row wrapped by the console would read as two broken rows
        out.print(plain(text, newlines=True), soft_wrap=True)
    else:
        out.print(Markdown(visible(text, newlines=True)))


markdown_option = click.option(
    "--markdown", "raw_markdown", is_flag=True,
    help="Print the Markdown as is, even on a terminal (the default when stdout is a pipe or a file).",
)  # fmt: skip

policy_option = click.option(
    "--policy", "policy_path", type=click.Path(path_type=Path),
    help="YAML of gate settings overriding evals.yaml's gate: section one by one (margin, alpha, correction, "
    "min_effect, pass_score, min_pairs, min_area_pairs, max_error_rate, strict_areas, floors).",
)  # fmt: skip


def append_step_summary(text: str) -> None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when the variable is set (a GitHub Actions job)."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text + "\n")


log_handler = SafeLogHandler(err)
"""Prints the package's warnings (retry waits with server error bodies) as safe one-line messages, repeats
folded into a count."""


def flush_warnings() -> None:
    """Say the count of warnings held back as repeats, before a command's own last lines."""
    log_handler.flush()


config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None,
    help="Config file (default: ./evals.yaml; built-in defaults when absent).",
)  # fmt: skip
reports_option = click.option(
    "--reports", "reports_dir", type=click.Path(path_type=Path), default=None,
    help="Reports folder holding evals.db and runs/ (default: reports/ beside the config).",
)  # fmt: skip


def reports_path(config: Config, reports_dir: Path | None) -> Path:
    return reports_dir if reports_dir is not None else config.path(config.reports_dir)


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for a terminal table; an en dash when there is none."""
    return "–" if value is None else format(value, spec)
