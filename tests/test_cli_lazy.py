"""``evals --help`` stays quick: the commands are imported only when one is run or its help asked for, and the
listing, read from ``evals.cli.COMMANDS``, is exactly what the commands themselves would print.

The table cannot drift from the commands: every command module is imported here and the table must name
each top-level command (and only those), each command's module and the modules that attach subcommands to
it, and its summary as the command's own help gives it.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import evals.cli
from evals.cli import COMMANDS, main

HEAVY = (
    "pydantic", "numpy", "httpx", "openai", "anthropic", "yaml", "jinja2", "scipy", "pandas", "sklearn",
    "presidio_analyzer", "presidio_anonymizer", "evals.config", "evals.store", "evals.records",
)  # fmt: skip
"""What ``evals --help`` must not load (the third-party ones are what made it take ~0.6 s)."""


def _every_cli_module() -> list[str]:
    modules = [f"evals.cli.{m.name}" for m in pkgutil.iter_modules(evals.cli.__path__)]
    for name in modules:
        importlib.import_module(name)
    return modules


def _loaded() -> dict[str, click.Command]:
    ctx = click.Context(main, info_name="evals")
    commands = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    assert None not in commands.values()
    return {name: command for name, command in commands.items() if command is not None}


def _subtree(command: click.Command) -> Iterator[click.Command]:
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _subtree(sub)


def test_the_table_holds_every_top_level_command_and_nothing_else():
    found: dict[int, str] = {}
    subcommands: set[int] = set()
    for module in _every_cli_module():
        for attribute, value in vars(sys.modules[module]).items():
            if isinstance(value, click.Command) and value is not main:
                found.setdefault(id(value), f"{module}.{attribute}")
                if isinstance(value, click.Group):
                    subcommands |= {id(sub) for sub in value.commands.values()}
    top_level = {where for key, where in found.items() if key not in subcommands}
    loaded = _loaded()
    assert {found.get(id(c), name) for name, c in loaded.items()} == top_level, (
        "evals.cli.COMMANDS must name every top-level command of the command modules, and only those"
    )
    assert {name: c.name for name, c in loaded.items()} == {name: name for name in loaded}


def test_each_summary_in_the_table_is_the_commands_own():
    for name, command in _loaded().items():
        assert COMMANDS[name].short_help == command.get_short_help_str(limit=10**6), name
        assert not command.hidden and not command.deprecated and not command.short_help, name


def test_the_table_names_every_module_that_attaches_a_subcommand():
    """``evals judge canary`` is defined in canary.py: a process that loads only judge.py must import it too."""
    _every_cli_module()
    for name, command in _loaded().items():
        entry = COMMANDS[name]
        named = {f"evals.cli.{m}" for m in (entry.module, *entry.extras)}
        for sub in _subtree(command):
            assert sub.callback is not None
            assert sub.callback.__module__ in named, (
                f"{sub.name} under `evals {name}` comes from {sub.callback.__module__}: add it to the extras"
            )


@pytest.mark.parametrize("width", [None, 40, 60, 78, 80, 100, 140])
def test_the_help_is_what_an_eager_group_prints(width):
    eager = click.Group(main.name, commands=_loaded(), params=main.params, help=main.help, epilog=main.epilog)
    lazy = main.get_help(click.Context(main, info_name="evals", terminal_width=width))
    assert lazy == eager.get_help(click.Context(eager, info_name="evals", terminal_width=width))
    assert "serve-local" in lazy and "Exit codes:" in lazy


def test_help_loads_no_command_module_nor_anything_heavy():
    code = (
        "import io, sys, contextlib\n"
        "from evals.cli import main\n"
        "help = io.StringIO()\n"
        "with contextlib.redirect_stdout(help):\n"
        "    code = main(['--help'], prog_name='evals', standalone_mode=False)\n"
        "assert code == 0 and 'serve-local' in help.getvalue(), help.getvalue()\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)\n"
        "             or (m.startswith('evals.cli.') and m != 'evals.cli.common')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_group_gets_its_attached_subcommands_in_a_fresh_process():
    code = "from evals.cli import main; main(['judge', '--help'], prog_name='evals')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Commands:")[1]
    for sub in ("calibrate", "canary", "drift", "probe", "rerun"):
        assert f"  {sub} " in listed, done.stdout


def test_an_unknown_command_is_a_usage_error_with_suggestions():
    result = CliRunner().invoke(main, ["rn"], prog_name="evals")
    assert result.exit_code == 2
    assert "No such command 'rn'" in result.output
    if hasattr(click.exceptions, "NoSuchCommand"):  # click >= 8.4 suggests close names
        assert "'run'" in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"], prog_name="evals")
    assert result.exit_code == 0 and result.output.startswith("evals, version ")
