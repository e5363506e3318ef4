"""Names the user gives things: run ids, baseline names, tags; and labels that come from suites.

Run ids, baseline names and tags become folder names (``reports/runs/<run_id>/``), URL paths in the index
and words in Markdown, so they follow one documented pattern, checked where they enter:

    NAME_PATTERN = ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$

a letter or digit, then up to 127 letters, digits, dots, underscores or hyphens: no slash, no leading dot
(so never ``..``), no space, no control character. Area and suite names come from suite files and may be
any readable text (``Contract law / EU``); they are never used as paths, and every output escapes them,
but a control character or an empty or whitespace-only label is refused (``check_label``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import click

from evals.errors import EvalsError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""Run ids, baseline names and tags."""
NAME_RULE = "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)


class InvalidName(EvalsError):
    """A run id, baseline name, tag or label does not follow the rules (the CLI exits 2)."""


def is_name(value: str) -> bool:
    """Whether ``value`` follows ``NAME_PATTERN``."""
    # fullmatch, not match with $: "$" also matches before a final newline.
    return _NAME.fullmatch(value) is not None


def check_name(value: str, what: str = "run id") -> str:
    """``value`` if it follows ``NAME_PATTERN``; InvalidName naming ``what`` and the rule otherwise."""
    if not is_name(value):
        raise InvalidName(f"{what} {value!r} is not valid: {NAME_RULE}")
    return value


def check_label(value: str, what: str = "area") -> str:
    """An area or suite name: any readable text, but not empty, not only spaces, no control characters."""
    if not value.strip():
        raise InvalidName(f"{what} {value!r} is empty; give it a name")
    bad = [
        ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") and ch != "\u200d"
    ]
    if bad:
        raise InvalidName(f"{what} {value!r} contains control character {bad[0]!r}; remove it")
    return value


def run_folder(reports_dir: Path, run_id: str) -> Path:
    """``<reports>/runs/<run_id>``, refusing a run id that could point anywhere else."""
    check_name(run_id, "run id")
    return reports_dir / "runs" / run_id


class NameType(click.ParamType):
    """A click parameter type for run ids, baseline names and tags (``NAME_PATTERN``).

    A bad value raises ``InvalidName``, which the CLI prints as one line and exits 2 (rather than click's
    usage block).
    """

    def __init__(self, what: str = "run id", metavar: str = "NAME"):
        self.what = what
        self.name = metavar  # click shows it as the option's metavar: --tag TAG, --run-id RUN_ID

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if is_name(text):
            return text
        where = ""
        if param is not None:
            where = (param.opts[0] if isinstance(param, click.Option) else param.human_readable_name) + ": "
        raise InvalidName(f"{where}{self.what} {text!r} is not valid: {NAME_RULE}")


RUN_ID = NameType("run id", "RUN_ID")
BASELINE_NAME = NameType("baseline name", "NAME")
RUN_OR_BASELINE = NameType("run id or baseline name", "RUN_ID|NAME")
TAG = NameType("tag", "TAG")
