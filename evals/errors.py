"""Errors a user can fix, shown as one line by the CLI without a traceback.

::

    EvalsError                  anything the user can fix: the CLI prints it and exits 2
    ├── SuiteError              a suite file is malformed; carries every Problem found (file, line, field)
    ├── ConfigError             evals.yaml is malformed, or names a model, judge or key that is missing
    ├── RubricError             a judge rubric file is malformed or missing
    ├── ProviderError           a model or judge server could not be used (after retries); recorded per item
    ├── StoreError              the run store cannot be opened, or a run id is unknown or does not fit
    ├── LocalModelError         the embedded llama.cpp server could not be found or started
    └── LabelsError             a labels file (people's scores) is malformed; carries every Problem found

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class EvalsError(Exception):
    """Base class of every error meant for display."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a suite: where it is and what is expected."""

    path: str
    """The file, as given by the user."""
    line: int | None
    """1-based line (or row, for tables) where the problem is; None when it concerns the whole file."""
    field: str | None
    """The item field concerned (``reference``, ``items[3].question``...), or None."""
    message: str
    """What is wrong and what was expected."""

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SuiteError(EvalsError):
    """A suite is malformed. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in suite"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ConfigError(EvalsError):
    """The configuration file is malformed or refers to something missing."""


class RubricError(EvalsError):
    """A rubric file is malformed or missing."""


class ProviderError(EvalsError):
    """A call to a model or judge failed for good (after retries). Never contains an API key."""


class StoreError(EvalsError):
    """The run store cannot be used as asked (unknown run id, mismatching resume...)."""


class LocalModelError(EvalsError):
    """The embedded local model server could not be found or started."""


class LabelsError(EvalsError):
    """A labels file (people's scores for calibration) is malformed; carries every Problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in labels file"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))
