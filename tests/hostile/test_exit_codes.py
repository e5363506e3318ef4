"""Exit codes keep their meaning (issue 10.5) and faults are one line (10.8): 1 is only ever a decided "no";
an unwritable file, a full disk, a damaged or read-only store is one line on stderr and exit 2, with the
traceback only under --debug, and leaves no temporary file behind."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cases import store_run
from click.testing import CliRunner, Result

from evals.cli import main
from evals.store import DB_NAME, MIGRATIONS, Store


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_error_line(result: Result) -> str:
    """The single line a failure prints; fails on a traceback or on more lines."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def reports(tmp_path) -> Path:
    """A closed store with two comparable runs, r01 (the baseline) and r02."""
    path = tmp_path / "reports"
    with Store(path) as store:
        store_run(store, "r01", ["math", "geo"])
        store_run(store, "r02", ["math", "geo"], started_at="2026-11-02T00:00:00+00:00", score=4)
        store.set_baseline("prod", "r01", "2026-11-03T00:00:00+00:00")
    return path


@pytest.fixture
def make_readonly() -> Iterator:
    """Makes paths unwritable even for root (chattr +i; chmod for other users); undone after the test."""
    frozen: list[Path] = []

    def freeze(*paths: Path) -> None:
        for path in paths:
            if os.geteuid() != 0:
                path.chmod(0o555 if path.is_dir() else 0o444)
            elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode:
                pytest.skip("running as root where chattr +i does not work: cannot make a file read-only")
            frozen.append(path)

    yield freeze
    for path in reversed(frozen):
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_an_unwritable_junit_file_is_one_line_and_exit_2_not_a_verdict(reports, tmp_path):
    (tmp_path / "junit.xml").mkdir()  # a folder where the file should go
    result = invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", str(reports),
                    "--junit", str(tmp_path / "junit.xml"))  # fmt: skip
    assert "junit.xml" in one_error_line(result)
    assert temporary_files(tmp_path) == []


def test_an_unwritable_step_summary_is_one_line_and_exit_2(reports, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a folder: cannot be appended to
    result = invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", str(reports))
    assert str(tmp_path) in one_error_line(result)


def test_a_failing_gate_is_still_exit_1(reports, tmp_path):
    with Store(reports) as store:
        store_run(store, "r03", ["math", "geo"], started_at="2026-11-04T00:00:00+00:00", score=1)
    result = invoke("gate", "--candidate", "r03", "--baseline", "prod", "--reports", str(reports))
    assert result.exit_code == 1 and "FAIL" in result.stdout


def _damage(db: Path) -> None:
    """Overwrite the pages after the first with garbage, as a bad disk or a stray write would."""
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 2 * page
    data[page:] = b"\xa5" * (len(data) - page)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "command",
    [
        ["gate", "--candidate", "r02", "--baseline", "prod"],
        ["compare", "r01", "r02"],
        ["baseline", "list"],
        ["report", "r02"],
        ["index"],
    ],
)
def test_a_damaged_store_is_one_line_naming_it(reports, command):
    _damage(reports / DB_NAME)
    line = one_error_line(invoke(*command, "--reports", str(reports)))
    if command[0] != "gate":  # the gate says it cannot decide, on stderr, with the same exit code
        assert str(reports / DB_NAME) in line


def test_a_hand_edited_store_row_is_one_line_and_debug_adds_the_traceback(reports):
    db = sqlite3.connect(reports / DB_NAME)
    db.execute("UPDATE runs SET config_json = '{broken' WHERE run_id = 'r01'")
    db.commit()
    db.close()
    line = one_error_line(invoke("baseline", "list", "--reports", str(reports)))
    assert "JSONDecodeError" in line and "--debug" in line
    debug = invoke("--debug", "baseline", "list", "--reports", str(reports))
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr and debug.stderr.strip().splitlines()[-1] == line


def test_the_exit_codes_are_listed_in_help():
    text = invoke("--help").output
    assert "Exit codes:" in text and "unexpected failure" in text
    assert "cannot decide" in invoke("gate", "--help").output


# read-only stores and folders (10.8) ------------------------------------------------------------------


def test_reading_commands_work_on_a_read_only_store(reports, make_readonly, tmp_path):
    make_readonly(reports / DB_NAME, reports)
    args = ("--reports", str(reports))
    gate = invoke("gate", "--candidate", "r02", "--baseline", "prod", *args)
    assert gate.exit_code in (0, 1) and "lookingglass gate" in gate.stdout, gate.output
    assert invoke("compare", "r01", "r02", *args).exit_code == 0
    listed = invoke("baseline", "list", *args)
    assert listed.exit_code == 0 and "prod" in listed.stdout
    assert invoke("rollback", "--to", "prod", *args).exit_code == 0
    # report and index read the store read-only and write their files elsewhere: an unwritable folder is one line
    line = one_error_line(invoke("report", "r02", *args))
    assert str(reports) in line
    assert sorted(p.name for p in reports.iterdir()) == [DB_NAME]


def test_a_read_only_store_that_needs_a_migration_says_so(reports, make_readonly):
    db = sqlite3.connect(reports / DB_NAME)
    db.execute("DELETE FROM _migrations WHERE name = '_m002_baselines'")
    db.commit()
    db.close()
    make_readonly(reports / DB_NAME, reports)
    line = one_error_line(invoke("baseline", "list", "--reports", str(reports)))
    assert "needs upgrading" in line and "read-only" in line


def test_a_writable_store_that_needs_a_migration_is_upgraded_by_a_reading_command(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    db = sqlite3.connect(reports / DB_NAME)  # a store from before the baselines table
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    MIGRATIONS[0](db)  # _m001_initial
    db.execute("INSERT INTO _migrations VALUES ('_m001_initial', datetime('now'))")
    db.commit()
    db.close()
    result = invoke("baseline", "list", "--reports", str(reports))
    assert result.exit_code == 0, result.output


def test_a_missing_store_is_not_created_by_a_reading_command(tmp_path):
    line = one_error_line(invoke("baseline", "list", "--reports", str(tmp_path / "nowhere")))
    assert "no run store" in line and not (tmp_path / "nowhere").exists()


def test_a_read_only_reports_folder_is_one_line_without_litter(reports, make_readonly):
    assert invoke("report", "r01", "--reports", str(reports)).exit_code == 0
    make_readonly(reports / "runs" / "r01")
    line = one_error_line(invoke("report", "r01", "--reports", str(reports)))
    assert "runs/r01" in line
    assert temporary_files(reports) == []


def _limited(limit: int):
    def apply() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path):
    """A file-size limit on the process stands in for a full disk: a write past it fails (EFBIG).

    The limit leaves room for SQLite's 32 KiB shared-memory file, which even a read-only reader needs.
    """
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "r01", ["math", "geo"], per_area=300)
    assert invoke("index", "--reports", str(reports)).exit_code == 0
    index = (reports / "index.html").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "evals", "report", "--reports", str(reports)],
        capture_output=True, text=True, preexec_fn=_limited(40_000), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "too large" in lines[0], result.stderr
    assert str(reports / "runs" / "r01") in lines[0]
    assert temporary_files(reports) == []
    assert not (reports / "runs" / "r01" / "scorecard.json").exists()  # nothing half-written
    assert (reports / "index.html").read_bytes() == index


# a damaged scorecard.json of one run (10.8) -----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"areas": 5}',
        '{"areas": [{"name": "x"}]}',
        "[]",
        "\xff",
        "[" * 100_000,
    ],
    ids=["syntax", "areas-number", "areas-incomplete", "list", "latin-1", "deep"],
)
def test_a_damaged_scorecard_does_not_break_the_index_or_other_reports(reports, content):
    args = ("--reports", str(reports))
    assert invoke("report", "r01", *args).exit_code == 0
    (reports / "runs/r01/scorecard.json").write_text(content, encoding="latin-1")
    result = invoke("index", *args)
    assert result.exit_code == 0, result.output
    assert "unreadable scorecard" in result.stderr and "runs/r01/scorecard.json" in result.stderr
    index = (reports / "index.html").read_text()
    assert "r01" in index and 'href="runs/r01/scorecard.html"' not in index
    other = invoke("report", "r02", *args)
    assert other.exit_code == 0, other.output
    assert 'href="runs/r02/scorecard.html"' in (reports / "index.html").read_text()
    assert json.loads((reports / "runs/r02/scorecard.json").read_text())["run"]["run_id"] == "r02"


def test_a_long_cannot_decide_message_stays_one_line(reports):
    with Store(reports) as store:
        store_run(store, "r03", ["math", "geo"], suite="s" * 300, started_at="2026-11-04T00:00:00+00:00")
    result = invoke("gate", "--candidate", "r03", "--baseline", "prod", "--reports", str(reports))
    assert result.exit_code == 2 and "different suites" in result.stdout
    missing = invoke("gate", "--candidate", "nope", "--baseline", "x" * 120, "--reports", str(reports))
    assert missing.exit_code == 2 and len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["report", "r02", "--fail-on-regression"], ["runs", "list"], ["compare", "r01", "r02"]]
)
def test_a_reader_that_hangs_up_is_not_a_decided_no(reports, tmp_path, command):
    """``evals report --fail-on-regression | head -1``: the closed pipe is a fault (2), never a "no" (1)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    with open(write, "wb") as stdout:
        result = subprocess.run([sys.executable, "-m", "evals", *command, "--reports", str(reports)],
                                stdout=stdout, stderr=subprocess.DEVNULL, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2


def test_rollback_write_to_a_config_that_cannot_be_replaced_names_the_config(
    reports, tmp_path, make_readonly
):
    config = tmp_path / "evals.yaml"
    config.write_text("models:\n  local: {model: new}\n")
    make_readonly(config)
    line = one_error_line(invoke("rollback", "--to", "prod", "--write", "--config", str(config),
                                 "--reports", str(reports)))  # fmt: skip
    assert str(config) in line and ".tmp" not in line, line
    assert temporary_files(tmp_path) == []


def test_junit_through_a_symlink_writes_its_target_and_keeps_the_link(reports, tmp_path):
    """``--junit /dev/stdout`` is a symlink too: replacing it with a file would break it for everyone."""
    target = tmp_path / "out" / "junit.xml"
    target.parent.mkdir()
    link = tmp_path / "junit.xml"
    link.symlink_to(target)
    result = invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", str(reports),
                    "--junit", str(link))  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert link.is_symlink() and "<testsuite" in target.read_text()


def test_junit_to_a_fifo_is_written_into_it_not_replaced(reports, tmp_path):
    fifo = tmp_path / "junit.xml"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", str(reports),
                    "--junit", str(fifo))  # fmt: skip
    reader.join(timeout=30)  # not a timing assertion: a guard against a reader left waiting
    assert result.exit_code in (0, 1), result.output
    assert fifo.is_fifo() and received and b"<testsuite" in received[0]
