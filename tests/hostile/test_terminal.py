"""Every terminal line is safe (issue 10.2): text from suites, servers and models is printed as plain text,
never interpreted as rich markup or as terminal escape sequences, and no command crashes on it."""

from __future__ import annotations

import json
import logging
import unicodedata
from pathlib import Path

import pytest
import yaml
from cases import TEXT, store_run
from click.testing import CliRunner, Result

from evals.cli import main
from evals.fakes import FakeOpenAI, text_reply
from evals.render.terminal import SafeLogHandler, plain, visible
from evals.store import Store

ROOT = Path(__file__).parent.parent.parent
ALL = "".join(TEXT.values())


def unsafe_characters(text: str) -> list[str]:
    """Characters a terminal would act on rather than show: controls (but newline), format, separators."""
    return [
        ch
        for ch in text
        if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") and ch != "\u200d"
    ]


def assert_safe(result: Result, *codes: int) -> None:
    assert result.exit_code in codes, result.output
    for stream in (result.stdout_bytes, result.stderr_bytes):
        assert b"\x1b" not in stream
        assert unsafe_characters(stream.decode("utf-8")) == []
    assert "Traceback" not in result.output
    assert "MarkupError" not in result.output


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


@pytest.mark.parametrize("text", TEXT.values(), ids=TEXT.keys())
def test_visible_shows_every_control_and_keeps_ordinary_text(text):
    shown = visible(text)
    assert unsafe_characters(shown) == [] and "\n" not in shown
    assert all(ch in shown for ch in text if not unsafe_characters(ch) and ch != "\n")
    assert plain(text).spans == [] and plain(text).plain == shown  # never parsed as markup


def test_visible_spells_escapes_out():
    assert visible("\x1b[31m") == "\\x1b[31m"
    assert visible("a\u202eb") == "a\\u202eb"
    assert visible("a\nb") == "a\\x0ab" and visible("a\nb", newlines=True) == "a\nb"
    assert visible("caf\u00e9 \u6f22\u5b57 \U0001f600 \U0001f468\u200d\U0001f469") == (
        "caf\u00e9 \u6f22\u5b57 \U0001f600 \U0001f468\u200d\U0001f469"
    )


def test_suite_validate_prints_odd_areas_as_text(tmp_path):
    items = [
        {"id": f"i{k}", "area": area, "question": "q?", "reference": "r"}
        for k, area in enumerate(TEXT.values())
    ]
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    result = invoke("suite", "validate", "odd.jsonl")
    assert_safe(result, 0, 1)  # areas with control characters may be refused by the suite loader: as text
    if result.exit_code == 0:
        assert "[/x]" in result.stdout and "[bold red]boom[/bold red]" in result.stdout
    printable = [{"id": "a", "area": "[/x]", "question": "q?", "reference": "r"}]
    (tmp_path / "brackets.yaml").write_text(yaml.safe_dump({"items": printable}))
    result = invoke("suite", "validate", "brackets.yaml")
    assert_safe(result, 0)
    assert "[/x]" in result.stdout


@pytest.fixture
def hostile_store(tmp_path):
    """Two runs whose areas, suite name and model ids are all hostile text."""
    reports = tmp_path / "reports"
    areas = list(TEXT.values())
    with Store(reports) as store:
        store_run(store, "r01", areas, per_area=2, suite=ALL[:200], model_id=ALL)
        store_run(store, "r02", areas, per_area=2, suite=ALL[:200], model_id=TEXT["osc8_link"],
                  started_at="2026-11-02T00:00:00+00:00", score=4)  # fmt: skip
        store.set_baseline("prod", "r01", "2026-11-03T00:00:00+00:00", note=TEXT["osc_title"])
    return reports


def test_every_reading_command_prints_hostile_names_as_text(hostile_store, tmp_path):
    reports = str(hostile_store)
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"models": {"local": {"model": "x"}}}))
    assert_safe(invoke("report", "--reports", reports), 0)
    assert_safe(invoke("report", "r02", "--baseline", "prod", "--reports", reports), 0)
    assert_safe(invoke("index", "--reports", reports), 0)
    assert_safe(invoke("compare", "r01", "r02", "--reports", reports), 0)
    assert_safe(invoke("gate", "--candidate", "r02", "--baseline", "prod", "--reports", reports), 0, 1, 2)
    assert_safe(invoke("baseline", "list", "--history", "--reports", reports), 0)
    assert_safe(invoke("rollback", "--to", "prod", "--reports", reports), 0)
    result = invoke("report", "r02", "--reports", reports)
    assert "[/]" in result.stdout and "\\x1b]8;;https://evil.example/" in result.stdout


def test_on_a_terminal_the_gate_drawn_and_the_runs_list_show_hostile_names_as_text(hostile_store):
    reports = str(hostile_store)
    terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": "100"}
    gate = CliRunner().invoke(main, ["gate", "--candidate", "r02", "--baseline", "prod", "--reports", reports],
                              env=terminal)  # fmt: skip
    assert_safe(gate, 1, 2)
    assert "###" not in gate.stdout  # drawn, not raw
    assert "[click](https://evil.example/)" in gate.stdout  # a link shown as written, never made one
    assert_safe(CliRunner().invoke(main, ["runs", "list", "--reports", reports], env=terminal), 0)
    assert_safe(CliRunner().invoke(main, ["runs", "list", "--wide", "--reports", reports], env=terminal), 0)


def test_run_prints_server_model_ids_areas_and_retry_warnings_as_text(tmp_path):
    calls = {"n": 0}

    def flaky(question: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:  # the fake answers 500 with this in its error body; the retry warning shows it
            raise RuntimeError(TEXT["ansi_csi"] + TEXT["osc_title"] + "[/]")
        return "r"

    items = [
        {"id": f"i{k}", "area": area, "question": f"q{k}?", "reference": "r"}
        for k, area in enumerate(("[/x]", "[bold]b[/bold]", ":smile:", "x | y"))
    ]
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    with FakeOpenAI(text_reply(flaky), model_id=TEXT["ansi_csi"] + TEXT["bidi_override"] + "[/]") as server:
        config = {
            "models": {
                "local": {"base_url": server.url, "model": "m", "max_retries": 2, "max_concurrency": 1}
            },
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        result = invoke("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")
    assert_safe(result, 0)
    assert "retrying" in result.stderr and "\\x1b[31mred" in result.stderr
    assert "[/x]" in result.stdout and "run id: r1" in result.stdout
    later = invoke("report", "r1")
    assert_safe(later, 0)


def test_log_handler_shows_a_record_with_bad_arguments_instead_of_crashing(capsys):
    from rich.console import Console

    handler = SafeLogHandler(Console(stderr=True, markup=False))
    record = logging.LogRecord("evals.x", logging.WARNING, __file__, 1, "%d then \x1b[2J", ("no",), None)
    handler.emit(record)
    assert "\x1b" not in capsys.readouterr().err


def test_a_markup_run_id_from_an_older_store_as_baseline_prints_as_text(tmp_path):
    reports = tmp_path / "reports"
    with Store(reports) as store:
        store_run(store, "[/]", ["math"])
        store_run(store, "r02", ["math"], started_at="2026-11-02T00:00:00+00:00")
    result = invoke("report", "r02", "--reports", str(reports))
    assert_safe(result, 0)
    assert "vs [/] (" in result.stdout
    assert_safe(invoke("index", "--reports", str(reports)), 0)
