"""The ``evals`` command: flags in, library calls, exit codes out. No scoring or SQL lives here.

Exit codes (every command):
  0  done (a run that finished with some per-item errors recorded is done, if it has at least one score)
  1  the answer is "no": a suite has problems (suite validate), a regression (report --fail-on-regression),
     the gate fails (gate), a judge below --min-kappa (judge calibrate), a tampered or missing audit
     record (audit verify); never anything else
  2  could not do it: bad config, suite, rubric, name or arguments, unknown run, server unreachable, the
     judge's first verdicts all unparseable, a run that ended with no score at all, and
     anything unexpected (an unwritable file, a full disk, a damaged store, a bug): one line on stderr, the
     traceback only with --debug
  130 interrupted (Ctrl-C); a run can be continued with --resume

A command's module is imported only when the command is run or its help asked for: ``COMMANDS`` names
each command's module, the modules that attach subcommands to it, and its summary for ``evals --help``
(a new command goes there; ``tests/test_cli_lazy.py`` fails on one it does not list).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import sqlite3
import traceback
from gettext import gettext
from typing import Any, NamedTuple

import click
from rich.text import Text

from evals.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    err,
    flush_warnings,
    log_handler,
    plain,
)
from evals.errors import EvalsError


def _describe(exc: Exception) -> str:
    """One line saying what went wrong and where, for a failure no command expected."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, sqlite3.DatabaseError):
        return f"the run store could not be used: {exc}"
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback and report it)"


class EvalsGroup(click.Group):
    """Turns every failure into one line on stderr (a traceback only with --debug) and exit 2.

    Exit 1 stays a decision (a failed gate, a regression, a suite with problems): nothing unexpected may
    end with it.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own ways to end: usage errors, --help, ctx.exit
        except KeyboardInterrupt:
            flush_warnings()
            err.print("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            flush_warnings()  # the repeated retry warnings' count, then the error that ended them
            if ctx.meta.get("evals.debug"):  # the traceback, then the same line and code as without --debug
                err.print(plain(traceback.format_exc(), newlines=True), soft_wrap=True)
            if isinstance(exc, EvalsError):
                message = plain(str(exc), newlines=True)  # a SuiteError lists one problem per line
            else:
                message = plain(_describe(exc))
            err.print(Text("error: ", style="bold red") + message, soft_wrap=True)
            ctx.exit(EXIT_ERROR)
        finally:
            flush_warnings()


def _short_lived_process() -> None:
    """Tune the collector for one command's process: young objects collected 30 times less often (the
    imports and a run's calls make many, few of them cyclic), and no walk over every object at exit (the
    process ends, its memory goes with it; ``evals docs benchmarks``, "A lean process"). Once per process."""
    if not _tuned:
        gc.set_threshold(20_000, 50, 100)
        atexit.register(gc.freeze)  # the other exit handlers still run; the final collection is skipped
        _tuned.append(True)


_tuned: list[bool] = []


class Lazy(NamedTuple):
    """Where a command of ``evals`` lives, and its line in ``evals --help``."""

    module: str
    """Its module under ``evals.cli``."""
    attribute: str
    short_help: str
    """The command's summary untruncated (its ``get_short_help_str`` with no limit); the listing shortens it
    to the terminal's width as click would. ``tests/test_cli_lazy.py`` holds the two equal."""
    extras: tuple[str, ...] = ()
    """Modules under ``evals.cli`` that attach subcommands to it (``evals judge canary`` from canary.py)."""


_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", None)  # click >= 8.4: "Did you mean"


class LazyGroup(EvalsGroup):
    """``evals``: its commands are imported only when one is run or its own help is asked for.

    ``evals --help`` lists them from the table (``lazy``) without importing any, so it loads neither
    pydantic nor the store, the SDKs or numpy (the documented way: click's "Lazily Loading Subcommands").
    """

    def __init__(self, *args: Any, lazy: dict[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"evals.cli.{entry.module}")
        for extra in entry.extras:
            importlib.import_module(f"evals.cli.{extra}")
        command = getattr(module, entry.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"evals.cli.{entry.module}.{entry.attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section as click writes it, each line from the table: nothing is imported."""
        limit = formatter.width - 6 - max(map(len, self.lazy))  # click's own: 3 times the default spacing
        rows = [
            (name, click.Command(name, help=self.lazy[name].short_help).get_short_help_str(limit))
            for name in self.list_commands(ctx)
        ]
        with formatter.section(gettext("Commands")):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click suggests close names from ``self.commands``, which holds none here: from the table
            if _NO_SUCH_COMMAND is None or not isinstance(exc, _NO_SUCH_COMMAND):
                raise
            raise _NO_SUCH_COMMAND(exc.command_name, possibilities=self.lazy, ctx=ctx) from None


COMMANDS = {
    "audit": Lazy(
        "audit", "audit",
        "The audit trail of outbound calls: verify its hash chains, show what went where for an item.",
    ),
    "baseline": Lazy("gate", "baseline", "Approve runs as named baselines (prod, staging...) and list them."),
    "compare": Lazy(
        "report", "compare",
        "Paired comparison of RUN_B against RUN_A per area (Δ, interval, status) and the decision `evals "
        "gate` would make on them (shown, not turned into an exit code: that is the gate's).",
    ),
    "demo": Lazy(
        "local", "demo", "Serve the bundled SmolLM2-135M on llama.cpp and run the demo suite against it.",
    ),
    "docs": Lazy("docs", "docs", "List the reference topics with a line each, or show TOPIC."),
    "export": Lazy("store", "export", "Export the store for analysis elsewhere.", extras=("weak",)),
    "gate": Lazy(
        "gate", "gate",
        "Decide whether CANDIDATE may replace BASELINE: exit 0 pass, 1 fail, 2 cannot decide (also when "
        "no baseline is given and none can be chosen).",
    ),
    "import": Lazy(
        "store", "import_",
        "Load runs exported by lookingglass into the store (EVALS_STORE, store: in the config, else "
        "evals.db).",
    ),
    "index": Lazy(
        "report", "index",
        "Write reports/index.html: every run with date, model, judge, overall score and a link to its "
        "scorecard.",
    ),
    "init": Lazy(
        "project", "init",
        "Scaffold a project in DIRECTORY (default: here); files that exist are skipped, never "
        "overwritten.",
    ),
    "judge": Lazy(
        "judge", "judge", "Measure the judge: calibration against people, noise, drift, probes.",
        extras=("canary", "judge_calibrate", "judge_rerun", "judge_probe"),
    ),
    "model": Lazy("local", "model", "Manage the bundled local model."),
    "purge": Lazy(
        "purge", "purge",
        "Remove the text of old runs from the store and their exports, keeping their scores.",
    ),
    "redact": Lazy(
        "redact", "redact",
        "Show what redaction would send for each item of SUITE, and count identifiers per area and kind.",
    ),
    "report": Lazy(
        "report", "report",
        "Write the scorecard of a run (default: the latest finished one) as HTML, JSON and Markdown, and "
        "summarize it, opening with the decision against its baseline (the one `evals gate` makes).",
    ),
    "review": Lazy(
        "review", "review",
        "People in the loop: export answers to score by hand, import the scores as labels and with the "
        "run.",
    ),
    "rollback": Lazy(
        "gate", "rollback", "Show (or with --write restore) the model configuration of an approved run.",
    ),
    "route": Lazy(
        "route", "route",
        "Route each area to the local model or keep it on the frontier: quality, cost, sensitivity, "
        "latency.",
    ),
    "rubric": Lazy("project", "rubric", "Work with rubrics."),
    "run": Lazy(
        "run", "run",
        "Answer every item of a suite (or of --area/--item-tag/--limit) with the model; the judge scores "
        "each 1-5.",
    ),
    "runs": Lazy(
        "runs", "runs", "List the stored runs; exclude a wrong one from baseline choice and history.",
    ),
    "serve-local": Lazy(
        "local", "serve_local",
        "Serve the bundled SmolLM2-135M at http://127.0.0.1:PORT/v1 in the foreground (Ctrl-C stops it).",
    ),
    "store": Lazy(
        "store", "store", "Manage run stores (SQLite files, PostgreSQL databases).",
        extras=("purge",),
    ),
    "suite": Lazy("run", "suite", "Work with suites.", extras=("generate", "references")),
    "worker": Lazy(
        "worker", "worker",
        "Work a run made by 'evals run --plan-only' (or an interrupted one) with any number of other "
        "workers.",
    ),
}  # fmt: skip
"""Every command of ``evals``: name -> where it lives and its line in ``evals --help``."""


@click.group(cls=LazyGroup, lazy=COMMANDS, epilog=EXIT_CODES_HELP)
@click.option(
    "--debug", is_flag=True, help="Also print the traceback of an error (the exit code is the same)."
)
@click.version_option(package_name="lookingglass")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """lookingglass: is the local model good enough for each area of our domain, and still after the upgrade?

    Runs domain question suites against a local model behind an OpenAI-compatible API, has a judge score
    every answer 1-5 against a rubric, and stores everything in reports/evals.db.
    """
    ctx.meta["evals.debug"] = debug
    _short_lived_process()
    package_log = logging.getLogger("evals")
    if log_handler not in package_log.handlers:
        package_log.addHandler(log_handler)
