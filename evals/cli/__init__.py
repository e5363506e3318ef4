"""The ``evals`` command: flags in, library calls, exit codes out. No scoring or SQL lives here.

Exit codes (every command):
  0  done (a run that finished with some per-item errors recorded is done)
  1  the answer is "no": a suite has problems (suite validate), a regression (report --fail-on-regression),
     the gate fails (gate)
  2  could not do it: bad config, suite, rubric or arguments, unknown run, server unreachable
  130 interrupted (Ctrl-C); a run can be continued with --resume
"""

from __future__ import annotations

import click
from rich.text import Text

from evals.cli.common import EXIT_CODES_HELP, EXIT_ERROR, EXIT_INTERRUPTED, err, plain
from evals.cli.gate import baseline, gate, rollback
from evals.cli.local import demo, model, serve_local
from evals.cli.report import compare, index, report
from evals.cli.run import run, suite
from evals.errors import EvalsError


class EvalsGroup(click.Group):
    """Prints an ``EvalsError`` as one line (no traceback unless --debug) and exits 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EvalsError as exc:
            if ctx.meta.get("evals.debug"):
                raise
            err.print(Text("error: ", style="bold red") + plain(str(exc)), soft_wrap=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            err.print("interrupted")
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=EvalsGroup, epilog=EXIT_CODES_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="lookingglass")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """lookingglass: is the local model good enough for each area of our domain, and still after the upgrade?

    Runs domain question suites against a local model behind an OpenAI-compatible API, has a judge score
    every answer 1-5 against a rubric, and stores everything in reports/evals.db.
    """
    ctx.meta["evals.debug"] = debug


for command in (run, suite, demo, serve_local, model, report, index, compare, gate, baseline, rollback):
    main.add_command(command)
