"""The wheel carries everything: installed into a fresh venv, `evals` works from an empty folder.

The wheel is built from a copy of the sources (a stale ``build/`` in the checkout would otherwise leak
deleted files into it), installed with its dependencies into a new virtual environment (from the package
index or pip's cache), and every command runs in an empty folder outside the checkout with no
PYTHONPATH, so a file that is read from the source tree instead of the package fails here.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from evals.fakes import FakeAnthropic, FakeOpenAI, text_reply

ROOT = Path(__file__).parent.parent
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "reports", "test-artifacts", "*.egg-info", "__pycache__", ".*_cache"
)
GUARD_S = 600
"""Upper bound for one subprocess, so that a hung install fails the test instead of the CI job."""


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``bin/`` of a fresh venv with the built wheel installed; one per test session (installing takes ~15 s)."""
    work = tmp_path_factory.mktemp("packaging")
    sources = work / "src"
    shutil.copytree(ROOT, sources, ignore=_NOT_SOURCES)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _check([*pip, "wheel", str(sources), "--no-deps", "-w", str(work / "dist")])
    [wheel] = (work / "dist").glob("lookingglass-*.whl")
    # No pip inside the new venv: this interpreter's pip installs into it (--python), which is faster.
    venv.create(work / "venv", with_pip=False)
    python = work / "venv" / "bin" / "python"
    _check([*pip, "--python", str(python), "install", "--no-compile", str(wheel)])
    yield python.parent


def _check(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=GUARD_S)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def grade(body: dict[str, object]) -> dict[str, object]:
    return {"rationale": "close enough", "score": 4}


def test_the_installed_wheel_inits_validates_and_runs_from_an_empty_folder(venv_bin, tmp_path):
    project = tmp_path / "empty"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PATH": f"{venv_bin}{os.pathsep}{env['PATH']}", "ANTHROPIC_API_KEY": "sk-ant-fake-0000"}

    def evals(*args: str) -> subprocess.CompletedProcess[str]:
        return _check([str(venv_bin / "evals"), *args], cwd=project, env=env)

    where = _check(
        [str(venv_bin / "python"), "-c", "import evals; print(evals.__file__)"], cwd=project, env=env
    )
    module = Path(where.stdout.strip())
    assert module.is_relative_to(venv_bin.parent) and not module.is_relative_to(ROOT)

    assert "created  evals.yaml" in evals("init").stdout
    listed = evals("rubric", "list").stdout
    shipped = next(
        line for line in listed.splitlines() if line.startswith("correctness") and "shipped" in line
    )
    assert str(venv_bin.parent) in shipped and "shadowed by ./judges" in shipped  # init's copy is used
    assert "ok: suite example: 30 items in 3 areas" in evals("suite", "validate", "suites").stdout

    with (
        FakeOpenAI(text_reply(lambda question: "Paris"), model_id="local-test") as model,
        FakeAnthropic(grade, model_id="claude-test") as judge,
    ):
        config = yaml.safe_load((project / "evals.yaml").read_text())
        config["models"]["local"]["base_url"] = model.url
        config["judges"]["claude"]["base_url"] = judge.url
        (project / "evals.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # local stays first
        evals("run")  # default_suite, and the first judge whose key is set
        assert model.count() == 30 and judge.count() == 30

    db = sqlite3.connect(project / "reports" / "evals.db")
    assert db.execute("SELECT status, judge_name, model_id FROM runs").fetchall() == [
        ("finished", "claude", "local-test")
    ]
    assert db.execute("SELECT score FROM judgments").fetchall() == [(4,)] * 30


def test_the_installed_wheel_shows_its_docs_from_an_empty_folder_and_needs_no_pytest(venv_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    listed = _check([str(venv_bin / "evals"), "docs"], cwd=tmp_path, env=env).stdout
    shipped = sorted(path.stem for path in (ROOT / "evals" / "defaults" / "docs").glob("*.md"))
    assert [line.split()[0] for line in listed.splitlines()[: len(shipped)]] == shipped
    for topic in ("redaction", "cli"):
        shown = _check([str(venv_bin / "evals"), "docs", topic], cwd=tmp_path, env=env).stdout
        assert shown == (ROOT / "evals" / "defaults" / "docs" / f"{topic}.md").read_text(encoding="utf-8")

    requires = _check(
        [str(venv_bin / "python"), "-c", "import importlib.metadata as m; print(*m.requires('lookingglass'), sep='\\n')"],
        cwd=tmp_path, env=env,
    ).stdout.splitlines()  # fmt: skip
    pytest_lines = [line for line in requires if line.startswith("pytest")]
    assert pytest_lines and all('extra == "test"' in line for line in pytest_lines), pytest_lines
