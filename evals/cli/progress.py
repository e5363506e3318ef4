"""A progress bar for runs: answered, judged, errors and ETA, drawn by rich on stderr.

Kept cheap on purpose: events only bump counters, and rich redraws a few times a second. Where stderr is
not a terminal (CI logs, cron mail) a bar cannot redraw, so a plain line is printed at the first unit done
and at every tenth of the work instead.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evals.render.terminal import visible


class RichReporter:
    """Implements ``evals.runner.Reporter`` with a rich progress bar."""

    def __init__(self, console: Console | None = None, label: str = "run"):
        self.console = console or Console(stderr=True)
        self.label = visible(label)  # a run id or suite name is data: shown, never interpreted
        self.total = self.done_answers = self.done_judged = self.errors = self.errors_unjudged = 0
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            TextColumn("answered {task.fields[answered]}/{task.total}"),
            TextColumn("judged {task.fields[judged]}/{task.total}"),
            TextColumn("errors {task.fields[errors]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=0, answered=0, judged=0, errors=0, visible=False)

    def start(self, total: int, answered: int, judged: int) -> None:
        self.total, self.done_answers, self.done_judged = total, answered, judged
        self.started = time.monotonic()
        self.progress.update(
            self.task, total=total, completed=judged, visible=True, answered=answered, judged=judged
        )
        self.progress.start()

    def _refresh(self, finished_unit: bool) -> None:
        if finished_unit and not self.console.is_terminal:
            self._log_line()
        self.progress.update(
            self.task,
            advance=1 if finished_unit else 0,
            answered=self.done_answers,
            judged=self.done_judged,
            errors=self.errors,
        )

    def answered(self, ok: bool) -> None:
        self.done_answers += 1
        if not ok:  # a unit whose answer failed is finished: it will not be judged
            self.errors += 1
            self.errors_unjudged += 1
        self._refresh(finished_unit=not ok)

    def judged(self, ok: bool) -> None:
        self.done_judged += 1
        self.errors += 0 if ok else 1
        self._refresh(finished_unit=True)

    def note(self, text: str) -> None:
        """A line above the bar (a batch judge's progress while the run waits for its batches)."""
        self.console.print(visible(text), markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.progress.stop()

    def _log_line(self) -> None:
        done = self.done_judged + self.errors_unjudged
        tenth = max(1, self.total // 10)
        if done == 1 or done % tenth == 0 or done == self.total:  # the first: the judge is grading
            elapsed = time.monotonic() - self.started
            self.console.print(
                f"{self.label}: {done}/{self.total} done · answered {self.done_answers} · judged "
                f"{self.done_judged} · errors {self.errors} · {elapsed:.0f} s",
                markup=False,
                highlight=False,
            )
