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
"""

from __future__ import annotations

import logging
import sqlite3
import traceback

import click
from rich.text import Text

from evals.cli import canary as _canary  # noqa: F401  (attaches evals judge drift and judge canary)
from evals.cli import judge_calibrate as judge_calibrate
from evals.cli import judge_rerun as judge_rerun
from evals.cli.audit import audit
from evals.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    err,
    flush_warnings,
    log_handler,
    plain,
)
from evals.cli.docs import docs
from evals.cli.gate import baseline, gate, rollback
from evals.cli.generate import suite_generate, suite_review  # noqa: F401  (attach to suite)
from evals.cli.judge import judge
from evals.cli.judge_probe import probe as _judge_probe  # noqa: F401  (registers `evals judge probe`)
from evals.cli.local import demo, model, serve_local
from evals.cli.project import init, rubric
from evals.cli.purge import purge
from evals.cli.redact import redact
from evals.cli.references import suite_references  # noqa: F401  (attaches to suite)
from evals.cli.report import compare, index, report
from evals.cli.review import review
from evals.cli.route import route
from evals.cli.run import run, suite
from evals.cli.runs import runs
from evals.cli.store import export, import_, store
from evals.cli.weak import export_weak  # noqa: F401  (attaches to export)
from evals.cli.worker import worker
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


@click.group(cls=EvalsGroup, epilog=EXIT_CODES_HELP)
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
    package_log = logging.getLogger("evals")
    if log_handler not in package_log.handlers:
        package_log.addHandler(log_handler)


COMMANDS = (
    init, run, worker, suite, rubric, demo, serve_local, model, report, index, compare, gate, baseline, rollback,
    runs, store, import_, export, judge, route, purge, audit, review, redact, docs,
)  # fmt: skip
for command in COMMANDS:
    main.add_command(command)
