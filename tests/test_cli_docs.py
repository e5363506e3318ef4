"""The CLI reference (evals/defaults/docs/cli.md) is the CLI's --help; a change to an option without regenerating it fails here."""

import runpy
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_cli_reference_matches_help():
    module = runpy.run_path(str(ROOT / "scripts" / "cli_docs.py"))
    expected = module["render"]()
    current = (ROOT / "evals" / "defaults" / "docs" / "cli.md").read_text()
    assert current == expected, (
        "evals/defaults/docs/cli.md is stale: run .venv/bin/python scripts/cli_docs.py"
    )


def test_every_command_lists_its_exit_codes():
    text = (ROOT / "evals" / "defaults" / "docs" / "cli.md").read_text()
    for section in text.split("\n## ")[1:]:
        if "Commands:" not in section:  # groups list subcommands instead
            assert "Exit codes" in section, section.splitlines()[0]
