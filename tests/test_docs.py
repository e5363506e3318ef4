"""Docs for pip users (issue 20 item 7): the reference ships in the package and `evals docs` shows it, the
README is a short path whose every pointer resolves, the main commands' --help ends with examples, and
pytest is not something the tool needs at run time.

The wheel-installed `evals docs` is tested in tests/test_packaging.py.
"""

from __future__ import annotations

import ast
import os
import pty
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.cli import main

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "evals" / "defaults" / "docs"
README = ROOT / "README.md"
TOPICS = sorted(path.stem for path in DOCS.glob("*.md"))
DOCS_POINTER = re.compile(r"`evals docs ([^`]+)`")
MAIN_COMMANDS = [
    ["run"], ["report"], ["gate"], ["compare"], ["demo"], ["init"], ["route"], ["judge", "calibrate"],
    ["suite", "generate"], ["docs"],
]  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="evals", terminal_width=100)


def test_evals_docs_lists_every_shipped_topic_with_its_title():
    result = invoke("docs")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines()[: len(TOPICS)]]
    assert listed == TOPICS
    assert "redaction    Redaction and sensitivity: what leaves the perimeter" in result.output
    assert "README" not in result.output  # one topic per page, nothing else in the folder is listed


def test_a_topic_piped_is_its_markdown_as_written():
    result = invoke("docs", "redaction")
    assert result.exit_code == 0, result.output
    assert result.output == (DOCS / "redaction.md").read_text(encoding="utf-8")
    assert invoke("docs", "redaction.md").output == result.output  # the file name works too


def test_an_unknown_topic_is_one_line_naming_the_topics_and_exit_2():
    result = invoke("docs", "redact")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "'redact'" in line and all(topic in line for topic in TOPICS)


def _on_a_terminal(*args: str) -> str:
    """What ``evals ARGS`` prints when its stdout is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "evals", *args], stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_topic_on_a_terminal_is_rendered_and_raw_prints_the_markdown():
    rendered = _on_a_terminal("docs", "redaction")
    assert "Redaction and sensitivity" in rendered
    assert "# Redaction" not in rendered and "**external**" not in rendered  # headings and bold rendered
    raw = _on_a_terminal("docs", "redaction", "--raw")
    assert raw.replace("\r\n", "\n") == (DOCS / "redaction.md").read_text(encoding="utf-8")


def test_every_docs_pointer_in_the_readme_and_the_docs_names_a_topic():
    sources = [README, ROOT / "docs" / "README.md", *DOCS.glob("*.md")]
    pointers = {
        (path.name, name)
        for path in sources
        for name in DOCS_POINTER.findall(path.read_text(encoding="utf-8"))
    }
    assert len({name for _, name in pointers}) >= 10  # the README leads to most topics
    missing = [
        f"{where}: evals docs {name}" for where, name in sorted(pointers) if name not in (*TOPICS, "TOPIC")
    ]
    assert not missing, "pointers to no topic: " + ", ".join(missing)
    table = README.read_text(encoding="utf-8").split("## Reference", 1)[1]
    unreached = [topic for topic in TOPICS if f"`{topic}`" not in table]
    assert not unreached, f"topics the README's reference table does not name: {unreached}"


def test_no_relative_link_that_breaks_for_pip_users():
    for path in [README, *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)]+)\)", path.read_text(encoding="utf-8")):
            assert target.startswith(("https://", "http://", "#")), f"{path.name}: relative link {target}"


def test_the_readme_is_a_short_path_and_keeps_the_test_command_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 180
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    steps = ["Install", "demo", "Your suite", "Your model", "scorecard", "Gate", "Nightly"]
    positions = [next(i for i, h in enumerate(headings) if step in h) for step in steps]
    assert positions == sorted(positions), headings
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/setup.sh --test" in ci and ".venv/bin/pytest" in ci
    assert "scripts/setup.sh --test && .venv/bin/pytest" in text


@pytest.mark.parametrize("command", MAIN_COMMANDS, ids=" ".join)
def test_the_help_of_each_main_command_ends_with_examples_of_it(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    _, examples = result.output.rsplit("Examples:\n", 1)
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert lines and all(line.startswith("evals ") for line in lines), examples
    assert any(line.startswith(f"evals {' '.join(command)}") for line in lines), examples


def test_pytest_is_only_a_test_extra_and_nothing_in_the_package_imports_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("pytest")]
    assert any(dep.startswith("pytest") for dep in project["optional-dependencies"]["test"])
    importers = []
    for path in (ROOT / "evals").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("pytest", "_pytest") for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert not importers, f"imports pytest at run time: {importers}"
