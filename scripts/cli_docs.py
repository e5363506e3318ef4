"""Write the CLI reference (evals/defaults/docs/cli.md, shown by `evals docs cli`) from the CLI's own --help, so the reference cannot drift from the code.

.venv/bin/python scripts/cli_docs.py          # rewrite evals/defaults/docs/cli.md
.venv/bin/python scripts/cli_docs.py --check  # exit 1 when it is stale (the tests do this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from evals.cli import main

DOC = Path(__file__).resolve().parent.parent / "evals" / "defaults" / "docs" / "cli.md"


def commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    found = [prefix]
    ctx = click.Context(group, info_name=" ".join(["evals", *prefix]))
    for name in sorted(group.list_commands(ctx)):  # `evals` imports a command's module when asked for it
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += commands(command, [*prefix, name])
        else:
            found.append([*prefix, name])
    return found


def render() -> str:
    parts = ["# CLI reference\n\nGenerated from `--help` by `scripts/cli_docs.py`; do not edit by hand.\n"]
    for path in commands(main, []):
        result = CliRunner().invoke(main, [*path, "--help"], prog_name="evals", terminal_width=100)
        title = " ".join(["evals", *path])
        parts.append(f"## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if DOC.exists() and DOC.read_text() == text else 1)
    DOC.write_text(text)
    print(f"wrote {DOC}")
