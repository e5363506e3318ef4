"""Hostile and broken exports: `evals import` and `evals store copy` check everything before writing anything,
write in one transaction, and say what is wrong in one line, `file:line: field: what is wrong`, exit 2.

Each case changes one thing in a real export (a run stored with ``make_run`` and written by
``Store.export_jsonl``), imports it into a store that already holds a run, and checks the line printed and
that every table of the store is exactly as before, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.errors import StoreError
from evals.records import MAX_SAMPLES
from evals.store import Store, transfer
from evals.store.human import AreaDraw, Draw, HumanScore, bring_over
from evals.store.transfer import copy_store, import_runs

SCORES = {"geo-1": [5, 4], "geo-2": [1, None], "math-1": [3, 3]}
"""r01: three items, two samples each; geo-2's second sample is a judge error."""


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/r09`` and ``runs/r01`` as lookingglass exports them."""
    reports = tmp_path_factory.mktemp("source")
    with Store(reports) as store:
        make_run(store, "r09", {"geo-1": [4], "math-1": [2]})
        make_run(store, "r01", SCORES)
        store.export_jsonl("r09")
        store.export_jsonl("r01")
    return reports / "runs"


@pytest.fixture
def run(exports: Path, tmp_path: Path) -> Path:
    """A fresh copy of r01's export, to spoil."""
    folder = tmp_path / "incoming" / "r01"
    shutil.copytree(exports / "r01", folder)
    return folder


@pytest.fixture
def target(exports: Path, store_url: str, tmp_path: Path) -> str:
    """A store (SQLite, then PostgreSQL) that holds r09 already."""
    with Store(tmp_path / "reports", url=store_url) as store:
        import_runs(exports / "r09", store)
    return store_url


def dump(url: str, tmp_path: Path) -> dict[str, list[str]]:
    """Every row of every table of the store, in a comparable form."""
    with Store(tmp_path / "reports", url=url, readonly=True) as store:
        if store.dialect == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        tables = sorted(row[0] for row in store._execute(sql).fetchall())
        return {t: sorted(map(repr, store._execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


def import_into(url: str, path: Path) -> Any:
    return CliRunner(env={"EVALS_STORE": url}).invoke(main, ["import", str(path)], catch_exceptions=False)


# -- the cases: (what is changed, the file, the expected line and field, words of the message) ------------


def manifest_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder: Path, data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"  # as Store.export_jsonl writes it
    (folder / "manifest.json").write_text(text)
    return text


def line_of(text: str, path: tuple[str | int, ...]) -> int:
    """The line of the last part of ``path``, found part after part: a key, an item of ``items`` (the line
    of its opening brace) by its position, or text in quotes (``'"../x"'``) as written."""
    lines = text.split("\n")
    at = 0
    for part in path:
        if isinstance(part, int):  # json.dumps(indent=1) opens each item on a line of its own
            at = [i for i in range(at, len(lines)) if lines[i] == "  {"][part]
        else:
            needle = part if part.startswith('"') else f'"{part}":'
            at = next(i for i in range(at, len(lines)) if needle in lines[i])
    return at + 1


def set_in(data: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    if value is DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


DELETE = object()


def manifest_case(
    path: tuple[str | int, ...], value: Any, field: str, words: str, at: tuple[str | int, ...] | None = None
) -> Any:
    """Set ``path`` of the manifest to ``value``; the error names ``field`` at the line of ``at`` (``path``
    when not given; line 1 for a field taken out)."""

    def spoil(folder: Path) -> tuple[str, int, str, str]:
        data = manifest_of(folder)
        set_in(data, path, value)
        text = write_manifest(folder, data)
        line = 1 if value is DELETE else line_of(text, at or path)
        return "manifest.json", line, field, words

    return pytest.param(
        spoil, id=f"manifest {field}={json.dumps(value) if value is not DELETE else 'missing'}"
    )


def raw_manifest(name: str, change: Callable[[bytes], bytes], line: int, field: str, words: str) -> Any:
    def spoil(folder: Path) -> tuple[str, int, str, str]:
        path = folder / "manifest.json"
        path.write_bytes(change(path.read_bytes()))
        return "manifest.json", line, field, words

    return pytest.param(spoil, id=f"manifest {name}")


def row_case(row: int, change: dict[str, Any], field: str, words: str, name: str | None = None) -> Any:
    """Update result row ``row`` (0-based) with ``change`` (``DELETE`` removes a key)."""

    def spoil(folder: Path) -> tuple[str, int, str, str]:
        path = folder / "results.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for key, value in change.items():
            set_in(rows[row], (key,), value)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return "results.jsonl", row + 1, field, words

    label = name or ", ".join(
        f"{k}={json.dumps(v) if v is not DELETE else 'missing'}" for k, v in change.items()
    )
    return pytest.param(spoil, id=f"row {label}")


def raw_row(
    name: str, change: Callable[[str], str], row: int, field: str, words: str, line: int | None = None
) -> Any:
    """Replace the text of result row ``row`` (0-based) with ``change(text)``; the error is on line ``line``
    (the row's own when not given)."""

    def spoil(folder: Path) -> tuple[str, int, str, str]:
        path = folder / "results.jsonl"
        lines = path.read_text().splitlines()
        lines[row] = change(lines[row])
        path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
        return "results.jsonl", line or row + 1, field, words

    return pytest.param(spoil, id=f"row {name}")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


NOT_A_MANIFEST = "not a run manifest exported by lookingglass"
NOT_A_ROW = "not a result row exported by lookingglass"

# fmt: off
CASES = [
    # the manifest's config: wrong types anywhere in it
    manifest_case(("config",), [], "config", "expected an object, got []"),
    manifest_case(("config",), "qwen", "config", 'expected an object, got "qwen"'),
    manifest_case(("config",), 3, "config", "expected an object, got 3"),
    manifest_case(("config", "model"), ["qwen"], "config.model", "expected an object"),
    manifest_case(("config", "model", "temperature"), "0.5", "config.model.temperature", "valid number"),
    manifest_case(("config", "model", "max_tokens"), True, "config.model.max_tokens", "valid integer, got true"),
    manifest_case(("config", "judging"), {"repeats": "2"}, "config.judging.repeats", "valid integer",
                  at=("config", "judging", "repeats")),
    manifest_case(("config", "selection"), {"limit": 1.5}, "config.selection.limit", "valid integer",
                  at=("config", "selection", "limit")),
    manifest_case(("config", "redaction"), {"status": "maybe"}, "config.redaction.status", "redacted",
                  at=("config", "redaction", "status")),
    manifest_case(("config", "patterns"), [{"name": "x", "regex": "a"}], "config.patterns[0].name", "capitals",
                  at=("config", "patterns", "name")),
    manifest_case(("config",), nested(100), "config", "nested more than 64 levels deep"),
    manifest_case(("config",), None, "config", "expected an object, got null"),
    manifest_case(("model",), {"name": "qwen"}, "model", 'expected a string or null, got {"name": "qwen"}'),
    manifest_case(("model_id",), ["qwen-1"], "model_id", "expected a string or null"),
    manifest_case(("rubrics",), "correctness", "rubrics", "expected a list of rubric names"),
    manifest_case(("suite_hash",), "", "suite_hash", "is empty"),
    manifest_case(("judge_name",), "", "judge_name", "is empty"),
    manifest_case(("lookingglass_version",), 2, "lookingglass_version", "expected a string, got 2"),
    # run ids, tags and names
    manifest_case(("run_id",), "../../../tmp/x", "run_id", "is not a valid run id"),
    manifest_case(("run_id",), "runs/r01", "run_id", "is not a valid run id"),
    manifest_case(("run_id",), "r01\u0000", "run_id", "is not a valid run id"),
    manifest_case(("run_id",), ".hidden", "run_id", "is not a valid run id"),
    manifest_case(("run_id",), "", "run_id", "is not a valid run id"),
    manifest_case(("run_id",), 7, "run_id", "expected a run id"),
    *(manifest_case(("run_id",), bad, "run_id", "is not a valid run id")
      for bad in ("a/b", "a\\b", ".", "..", "x" * 300, "r\u202e01", "-r01", "r 01", "r01\n", "\uff5201", "_r01")),
    manifest_case(("tags",), ["nightly", "../x"], "tags[1]", "is not a valid tag", at=("tags", '"../x"')),
    manifest_case(("tags",), "nightly", "tags", "expected a list of tags"),
    manifest_case(("tags",), None, "tags", "expected a list of tags, got null"),
    manifest_case(("suite_name",), " ", "suite_name", "is empty"),
    manifest_case(("suite_name",), "demo\u001b[31m", "suite_name", "control character"),
    manifest_case(("model_name",), 5, "model_name", "expected a string, got 5"),
    manifest_case(("judge_name",), DELETE, "judge_name", "required"),
    # numbers, statuses, times
    manifest_case(("samples",), "2", "samples", f'expected a whole number from 1 to {MAX_SAMPLES}, got "2"'),
    manifest_case(("samples",), True, "samples", "got true"),
    manifest_case(("samples",), 2.0, "samples", "got 2.0"),
    manifest_case(("samples",), 0, "samples", "got 0"),
    manifest_case(("samples",), -3, "samples", "got -3"),
    manifest_case(("samples",), 10**9, "samples", "got 1000000000"),
    manifest_case(("status",), "done", "status", "expected one of running, interrupted, finished, failed"),
    manifest_case(("status",), None, "status", "got null"),
    manifest_case(("status",), 3, "status", "got 3"),
    manifest_case(("status",), "FINISHED", "status", 'got "FINISHED"'),
    manifest_case(("samples",), 1.5, "samples", "got 1.5"),
    manifest_case(("samples",), None, "samples", "got null"),
    manifest_case(("started_at",), "yesterday", "started_at", "not an ISO 8601 time with its UTC offset"),
    manifest_case(("started_at",), "2026-11-01T00:00:00", "started_at", "with its UTC offset"),
    manifest_case(("started_at",), 1780000000, "started_at", "expected an ISO 8601 time"),
    manifest_case(("ended_at",), "soon", "ended_at", "not an ISO 8601 time"),
    manifest_case(("ended_at",), 1780000000, "ended_at", "got 1780000000"),
    manifest_case(("started_at",), 10**20, "started_at", "got 100000000000000000000"),
    # times Python reads but lookingglass never writes: they would sort out of order as text
    *(manifest_case((name,), bad, name, "not an ISO 8601 time with its UTC offset")
      for name, bad in (("started_at", "2026-13-45T00:00:00+00:00"), ("ended_at", "2026-02-30T00:00:00+00:00"),
                        ("started_at", "2026-11-01 00:00:00+00:00"), ("started_at", "20261101T000000+0000"),
                        ("started_at", "2026-W44-1T00:00Z"), ("started_at", "2026-11-01T00:00:00Z"),
                        ("started_at", "2026-11-01T00:00:00.123456789+00:00"),
                        ("ended_at", "2026-11-01T02:00:00+02:00"), ("started_at", "0001-01-01T00:00:00+05:00"))),
    manifest_case(("schema_version",), 99, "schema_version", "re-export"),
    manifest_case(("schema_version",), True, "schema_version", "got true"),
    # items
    manifest_case(("items",), {"id": "geo-1"}, "items", "expected a list of items"),
    manifest_case(("items",), [], "items", "lists no items"),
    manifest_case(("items", 1, "id"), "geo-1", "items[1].id", "duplicate id 'geo-1'"),
    manifest_case(("items", 0, "id"), "geo\u202e1", "items[0].id", "control character"),
    manifest_case(("items", 2, "area"), 5, "items[2].area", "expected a valid string, got 5"),
    manifest_case(("items", 2, "area"), "", "items[2].area", "at least 1 character"),
    manifest_case(("items", 1, "tags"), ["ok", "\t"], "items[1].tags", "is empty"),
    manifest_case(("items", 1, "sensitivity"), "secret", "items[1].sensitivity", "public"),
    manifest_case(("items", 1, "colour"), "red", "items[1].colour", "unknown field"),
    manifest_case(("items", 1, "question"), None, "items[1]", "needs a 'question'", at=("items", 1)),
    # text that is not JSON, or not the object it should be
    raw_manifest("key twice", lambda b: b.replace(b' "samples": 2,', b' "samples": 2,\n "samples": 1,'),
                 13, "samples", "given twice (first on line 12)"),
    raw_manifest("items twice", lambda b: b.replace(b' "schema_version": 1,', b' "items": [],\n "schema_version": 1,'),
                 30, "items", "given twice (first on line 28)"),
    raw_manifest("a later key not JSON", lambda b: b.replace(b' "schema_version": 1,', b' "later": tru,\n "schema_version": 1,'),
                 28, "later", "invalid JSON"),
    raw_manifest("NaN samples", lambda b: b.replace(b'"samples": 2', b'"samples": NaN'), 12, "samples", "NaN"),
    raw_manifest("Infinity in config",
                 lambda b: b.replace(b'   "model": "qwen"', b'   "model": "qwen",\n   "temperature": Infinity'),
                 17, "config.model.temperature", "Infinity is not JSON"),
    raw_manifest("1e999", lambda b: b.replace(b'"samples": 2', b'"samples": 1e999'), 12, "samples", "finite"),
    raw_manifest("not UTF-8", lambda b: b.replace(b'"demo"', b'"d\xffmo"'), 3, "encoding", "not valid UTF-8"),
    raw_manifest("cut short", lambda b: b[: len(b) // 2], 0, NOT_A_MANIFEST, "cut short"),
    raw_manifest("text after it", lambda b: b + b"{}\n", 0, NOT_A_MANIFEST, "more text after"),
    raw_manifest("a list", lambda b: b"[" + b + b"]", 1, NOT_A_MANIFEST, "expected a JSON object"),
    raw_manifest("a BOM, CRLF lines and a bad status",
                 lambda b: b"\xef\xbb\xbf" + b.replace(b'"finished"', b'"done"').replace(b"\n", b"\r\n"),
                 24, "status", "got \"done\""),
    raw_manifest("not UTF-8 past the first chunk",
                 lambda b: b.replace(b' "schema_version": 1,', b' "later": [\n' + b"1,\n" * 40_000 + b'1],\n "schema_version": 1,')
                 .replace(b'"ref math-1"', b'"ref \xc3\x28"'), 57 + 40_002, "encoding", "not valid UTF-8"),
    raw_manifest("an item nested 10,000 deep",
                 lambda b: b.replace(b'"metadata": {}', b'"metadata": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, 1),
                 30, "items[0]", "nested more than 64 levels deep"),
    raw_manifest("a later key nested 10,000 deep",
                 lambda b: b.replace(b' "schema_version": 1,', b' "later": ' + b"[" * 10_000 + b"]" * 10_000 + b",\n \"schema_version\": 1,"),
                 28, "later", "nested more than 64 levels deep"),
    raw_manifest("bad item JSON", lambda b: b.replace(b'"area": "math",', b'"area": math,'),
                 0, "items[2]", "invalid JSON"),
    # result rows: scores
    row_case(0, {"score": 0}, "score", "expected a number from 1 to 5, or null, got 0"),
    row_case(0, {"score": 99}, "score", "got 99"),
    row_case(0, {"score": 5.5}, "score", "got 5.5"),
    row_case(0, {"score": -1}, "score", "got -1"),
    # texts longer than a run keeps (the model's max_answer_chars, 20,000 by default; a judge's reply too)
    row_case(0, {"answer": "a" * 20_001}, "answer", "20,001 characters, more than the 20,000 a run keeps",
             name="answer over the cap"),
    row_case(1, {"reasoning": "r" * 20_001}, "reasoning", "more than the 20,000", name="reasoning over the cap"),
    row_case(0, {"rationale": "w" * 20_001}, "rationale", "more than the 20,000", name="rationale over the cap"),
    row_case(0, {"raw": "{" * 20_001}, "raw", "more than the 20,000", name="raw verdict over the cap"),
    row_case(0, {"score": "5"}, "score", 'got "5"'),
    row_case(0, {"score": True}, "score", "got true"),
    raw_row("score NaN", lambda t: t.replace('"score": 5.0', '"score": NaN'), 0, "score", "NaN is not JSON"),
    raw_row("score Infinity", lambda t: t.replace('"score": 5.0', '"score": Infinity'), 0, "score", "Infinity"),
    raw_row("score -Infinity", lambda t: t.replace('"score": 5.0', '"score": -Infinity'), 0, "score", "Infinity"),
    raw_row("score 1e999", lambda t: t.replace('"score": 5.0', '"score": 1e999'), 0, "score", "finite"),
    row_case(0, {"score": 6}, "score", "got 6"),
    row_case(0, {"score": 0.999}, "score", "got 0.999"),
    row_case(0, {"score": 1e308}, "score", "got 1e+308"),
    row_case(0, {"score": False}, "score", "got false"),
    row_case(0, {"score": "NaN"}, "score", 'got "NaN"'),
    row_case(0, {"judge_error": "timeout"}, "score", "has both a score (5) and an error", "score and judge_error"),
    row_case(4, {"error": "boom"}, "score", "has both a score (3) and an error", "score and error"),
    row_case(0, {"answer_error": "refused"}, "score", "has both a score", "score and answer_error"),
    row_case(0, {"judge": None}, "score", "no judge", "score without a judge"),
    # samples
    row_case(0, {"sample": -1}, "sample", f"expected a whole number from 0 to {MAX_SAMPLES - 1}, got -1"),
    row_case(0, {"sample": MAX_SAMPLES}, "sample", f"got {MAX_SAMPLES}"),
    row_case(0, {"sample": 2}, "sample", "sample 2 is not one the run asked (samples 0 to 1)"),
    row_case(0, {"sample": "0"}, "sample", 'got "0"'),
    row_case(0, {"sample": True}, "sample", "got true"),
    row_case(0, {"sample": 0.0}, "sample", "got 0.0"),
    row_case(0, {"sample": DELETE}, "sample", "required"),
    row_case(0, {"sample": 10**9}, "sample", "got 1000000000"),
    row_case(0, {"sample": 1.5}, "sample", "got 1.5"),
    row_case(0, {"sample": False}, "sample", "got false"),
    row_case(0, {"sample": None}, "sample", "got null"),
    # counts, latencies, flags, kinds
    row_case(1, {"answer_tokens_in": -5}, "answer_tokens_in", "from 0 up, or null, got -5"),
    row_case(1, {"answer_tokens_out": True}, "answer_tokens_out", "got true"),
    row_case(1, {"judge_tokens_in": 1.5}, "judge_tokens_in", "got 1.5"),
    row_case(1, {"answer_latency_ms": -1}, "answer_latency_ms", "got -1"),
    row_case(1, {"judge_latency_ms": "fast"}, "judge_latency_ms", 'got "fast"'),
    row_case(1, {"answer_finished_at": "now"}, "answer_finished_at", 'got "now"'),
    row_case(1, {"answer_length": -2}, "answer_length", "got -2"),
    # numbers past what the store, and a sum of them over a run, can hold
    row_case(1, {"answer_tokens_in": 2**63}, "answer_tokens_in", f"expected at most {2**31 - 1}, got {2**63}"),
    row_case(1, {"answer_tokens_out": 2**62}, "answer_tokens_out", f"expected at most {2**31 - 1}, got {2**62}"),
    row_case(1, {"judge_tokens_out": 10**20}, "judge_tokens_out", "expected at most 2147483647"),
    row_case(1, {"answer_length": 2**40}, "answer_length", "expected at most 2147483647"),
    row_case(1, {"judge_latency_ms": 10**30}, "judge_latency_ms", "milliseconds (a year), got 1000000000000000000000000000000"),
    row_case(1, {"answer_latency_ms": 1e308}, "answer_latency_ms", "milliseconds (a year), got 1e+308"),
    row_case(1, {"answer_finished_at": 1e300}, "answer_finished_at", "(the end of the year 9999), got 1e+300"),
    row_case(1, {"answer_finished_at": 10**20}, "answer_finished_at", "got 100000000000000000000"),
    row_case(1, {"answer_finished_at": "2026-13-45"}, "answer_finished_at", 'got "2026-13-45"'),
    row_case(1, {"truncated": "yes"}, "truncated", "true, false or null"),
    row_case(1, {"cached": 1}, "cached", "got 1"),
    row_case(1, {"error_kind": "other"}, "error_kind", "answer, judge or null"),
    row_case(1, {"flags": [{"kind": "bogus", "span": [0, 1]}]}, "flags[0].kind", "score_instruction"),
    row_case(1, {"flags": [{"kind": "role_tag", "span": [5, 1]}]}, "flags[0].span", "start is after its end"),
    row_case(1, {"flags": "role_tag"}, "flags", "a list of {kind, span} objects"),
    row_case(1, {"answer": 42}, "answer", "expected a string or null, got 42"),
    # rows that belong elsewhere, or twice
    row_case(2, {"run_id": "r02"}, "run_id", "is not the manifest's 'r01'"),
    row_case(2, {"id": "geo-9"}, "id", "item \"geo-9\" is not among the manifest's items"),
    row_case(2, {"id": 5}, "id", "expected a string, got 5"),
    row_case(3, {"id": "geo-1", "sample": 0}, "sample", "a second row for item 'geo-1' sample 0 (first on line 1)"),
    raw_row("key twice", lambda t: '{"score": 1, ' + t[1:], 0, NOT_A_ROW, "duplicate key 'score'"),
    raw_row("not an object", lambda t: "[1, 2]", 2, NOT_A_ROW, "expected a JSON object, got [1, 2]"),
    raw_row("not JSON", lambda t: "{not json", 2, NOT_A_ROW, "invalid JSON"),
    raw_row("nested deep", lambda t: t[:-1] + ', "x": ' + json.dumps(nested(100)) + "}", 2, NOT_A_ROW,
            "nested more than 64 levels deep"),
    raw_row("nested 10,000 deep", lambda t: t.replace('"tags": []', '"tags": ' + "[" * 10_000 + "]" * 10_000), 2,
            NOT_A_ROW, "nested more than 64 levels deep"),
    raw_row("cut short", lambda t: t[:-40], 5, NOT_A_ROW, "invalid JSON"),
    raw_row("CRLF, then a bad score", lambda t: t.replace('"score": 1.0', '"score": 0') + "\r", 2, "score", "got 0"),
    raw_row("an empty line, then a bad score", lambda t: "\n" + t.replace('"score": 3.0', '"score": 0'), 4, "score",
            "got 0", line=6),
    raw_row("not UTF-8", lambda t: t.replace("answer geo-2", "answer \udcffgeo-2"), 2, "encoding", "not valid UTF-8"),
]
# fmt: on


@pytest.mark.parametrize("spoil", CASES)
def test_a_bad_export_is_one_line_exit_2_and_the_store_is_exactly_as_before(
    spoil: Callable[[Path], tuple[str, int, str, str]], run: Path, target: str, tmp_path: Path
) -> None:
    before = dump(target, tmp_path)
    name, line, field, words = spoil(run)
    result = import_into(target, run)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    where = f"{run / name}:{line}: " if line else f"{run / name}:"
    assert message.startswith(f"error: {where}"), message
    assert f": {field}: " in message and words in message, message
    assert dump(target, tmp_path) == before


DRAW = {
    "kind": "draw",
    "draw_id": "d1",
    "run_id": "r01",
    "seed": 7,
    "asked": 2,
    "drawn_at": "2026-11-02T00:00:00+00:00",
    "areas": [{"area": "geo", "answers": 4, "drawn": 2}],
    "picked": [{"item_id": "geo-1", "sample": 0}, {"item_id": "geo-2", "sample": 0}],
}
SCORE = {
    "kind": "score",
    "run_id": "r01",
    "item_id": "geo-1",
    "sample": 0,
    "rater": "ana",
    "score": 4,
    "scored_at": "2026-11-02T00:00:00+00:00",
    "random": True,
    "draw_id": "d1",
}
"""A random draw of r01 and a person's score of an answer it picked, as ``human_scores.jsonl`` holds them."""

HUMAN_CASES = [
    pytest.param({"asked": 10**20}, {}, 1, "asked", "2147483647", id="draw asked 10**20"),
    pytest.param({"areas": [{"area": "geo", "answers": 2**40, "drawn": 2}]}, {}, 1, "areas[0].answers", "2147483647",
                 id="draw area's answers 2**40"),
    pytest.param({"seed": 2**64}, {}, 1, "seed", "9223372036854775807", id="draw seed 2**64"),
    pytest.param({"drawn_at": "2026-W44-1T00:00Z"}, {}, 1, "drawn_at", "not an ISO 8601 time", id="draw time"),
    pytest.param({"draw_id": "../x"}, {"draw_id": "../x"}, 1, "draw_id", "is not a draw id", id="draw id"),
    pytest.param({}, {"sample": 10**9}, 2, "sample", "got 1000000000", id="score sample 10**9"),
    pytest.param({}, {"score": 4.0}, 2, "score", "got 4.0", id="score 4.0"),
    pytest.param({}, {"score": True}, 2, "score", "got true", id="score true"),
    pytest.param({}, {"rater": "a\u001bna"}, 2, "rater", "control character", id="rater"),
    pytest.param({}, {"scored_at": "2026-11-02 00:00:00+00:00"}, 2, "scored_at", "not an ISO 8601 time", id="score time"),
    pytest.param({}, {"run_id": "r09"}, 2, "run_id", "is not the manifest's 'r01'", id="score of another run"),
]  # fmt: skip


@pytest.mark.parametrize(("draw", "score", "line", "field", "words"), HUMAN_CASES)
def test_a_bad_line_of_peoples_scores_is_one_line_exit_2_and_the_store_is_exactly_as_before(
    draw: dict[str, Any], score: dict[str, Any], line: int, field: str, words: str, run: Path, target: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    before = dump(target, tmp_path)
    (run / "human_scores.jsonl").write_text(json.dumps(DRAW | draw) + "\n" + json.dumps(SCORE | score) + "\n")
    result = import_into(target, run)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"error: {run / 'human_scores.jsonl'}:{line}: {field}: "), message
    assert words in message, message
    assert dump(target, tmp_path) == before


def test_the_export_itself_imports_and_a_one_line_manifest_too(
    run: Path, target: str, tmp_path: Path
) -> None:
    assert import_into(target, run).exit_code == 0
    once = dump(target, tmp_path)
    later = {**manifest_of(run), "added_by_a_later_version": {"kept": False}}
    (run / "manifest.json").write_text(json.dumps(later))  # minified: one line, a key this version ignores
    again = import_into(target, run)
    assert again.exit_code == 0, again.output
    assert "0 new run(s)" in again.output and "1 already there" in again.output
    assert {k: v for k, v in dump(target, tmp_path).items() if k != "audit_imports"} == {
        k: v for k, v in once.items() if k != "audit_imports"
    }


def test_one_bad_run_among_good_ones_writes_none_of_them(exports: Path, target: str, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    for run_id in ("r09", "r01"):
        shutil.copytree(exports / run_id, incoming / run_id)
    good = manifest_of(incoming / "r01")
    for name in ("r02", "r03"):  # two more good runs, then a bad one
        shutil.copytree(incoming / "r01", incoming / name)
        (incoming / name / "results.jsonl").write_text(
            (incoming / "r01" / "results.jsonl").read_text().replace('"run_id": "r01"', f'"run_id": "{name}"')
        )
        write_manifest(incoming / name, {**good, "run_id": name})
    rows = (incoming / "r03" / "results.jsonl").read_text().splitlines()
    rows[-1] = rows[-1].replace('"score": 3.0', '"score": 30')
    (incoming / "r03" / "results.jsonl").write_text("\n".join(rows) + "\n")
    before = dump(target, tmp_path)
    result = import_into(target, incoming)
    assert result.exit_code == 2
    assert f"r03/results.jsonl:{len(rows)}: score: " in result.output
    assert dump(target, tmp_path) == before


def test_a_run_changed_between_check_and_write_rolls_the_whole_import_back(
    exports: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second pass checks again: a file spoiled after the first pass ends the one transaction, and the
    runs already written in it are gone with it."""
    incoming = tmp_path / "incoming"
    shutil.copytree(exports / "r01", incoming / "r01")
    shutil.copytree(exports / "r01", incoming / "r02")
    (incoming / "r02" / "results.jsonl").write_text(
        (incoming / "r02" / "results.jsonl").read_text().replace('"run_id": "r01"', '"run_id": "r02"')
    )
    write_manifest(incoming / "r02", {**manifest_of(incoming / "r01"), "run_id": "r02"})
    read = transfer.read_results
    calls: list[Path] = []

    def spoiled_in_between(folder: Path, *args: Any) -> Any:
        calls.append(folder)
        if len(calls) == 4:  # r02, second pass: r01 is already written in the transaction
            path = folder / "results.jsonl"
            path.write_text(path.read_text().replace('"score": 4.0', '"score": 40'))
        return read(folder, *args)

    monkeypatch.setattr(transfer, "read_results", spoiled_in_between)
    before = dump(target, tmp_path)
    result = import_into(target, incoming)
    assert result.exit_code == 2 and "r02/results.jsonl:2: score: " in result.output
    assert calls == [incoming / "r01", incoming / "r02", incoming / "r01", incoming / "r02"]
    assert dump(target, tmp_path) == before


def test_a_run_of_the_same_id_that_is_another_run_is_refused_before_writing(
    run: Path, target: str, tmp_path: Path
) -> None:
    write_manifest(run, {**manifest_of(run), "run_id": "r09"})
    (run / "results.jsonl").write_text((run / "results.jsonl").read_text().replace('"r01"', '"r09"'))
    before = dump(target, tmp_path)
    result = import_into(target, run)
    assert result.exit_code == 2
    assert "manifest.json: run_id: run r09 in" in result.output and "is another run" in result.output
    assert dump(target, tmp_path) == before


def test_a_run_folder_without_its_results_is_refused(run: Path, target: str, tmp_path: Path) -> None:
    (run / "results.jsonl").unlink()
    before = dump(target, tmp_path)
    result = import_into(target, run)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {run / 'results.jsonl'}: missing; a run's export is its whole folder (reports/runs/<run_id>/, "
        "manifest.json and results.jsonl): copy all of it"
    )
    assert dump(target, tmp_path) == before


def test_two_folders_exporting_one_run_are_refused(exports: Path, target: str, tmp_path: Path) -> None:
    shutil.copytree(exports / "r01", tmp_path / "incoming" / "a" / "r01")
    shutil.copytree(exports / "r01", tmp_path / "incoming" / "b" / "r01")
    result = import_into(target, tmp_path / "incoming")
    assert result.exit_code == 2 and "run r01 is also exported in" in result.output


def test_what_is_valid_at_the_edges_imports_and_every_command_reads_it(run: Path, tmp_path: Path) -> None:
    """Scores 1 and 5 and a panel's 3.5, zero tokens, an answer error with no answer, empty strings: all kept."""
    path = run / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0] |= {"score": 1, "answer_tokens_in": 0, "answer_latency_ms": 0}
    rows[1] |= {"score": 3.5, "rationale": "", "flags": [{"kind": "role_tag", "span": [0, 0]}]}
    rows[4] |= {"answer": None, "answer_error": "timeout", "error": "timeout", "error_kind": "answer",
                "score": None, "judge": None}  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(run), "--reports", "target"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "target") as store:
        scores = {(r.id, r.sample): r.score for r in store.results("r01")}
        assert scores[("geo-1", 0)] == 1 and scores[("geo-1", 1)] == 3.5 and scores[("math-1", 0)] is None
        stored = store._execute("SELECT count(*) FROM run_areas WHERE run_id = 'r01'").fetchone()[0]
        assert stored == 3  # two areas and the whole run, computed once the import committed
    listed = runner.invoke(main, ["runs", "list", "--reports", "target"])
    assert listed.exit_code == 0 and "r01" in listed.output
    reported = runner.invoke(main, ["report", "r01", "--reports", "target"])
    assert reported.exit_code == 0, reported.output


# -- evals store copy --------------------------------------------------------------------------------------

# fmt: off
SOURCE_DAMAGE = [
    pytest.param("UPDATE runs SET config_json = '[]'", "run r01: config: ", id="config a list"),
    pytest.param(
        'UPDATE runs SET config_json = \'{"model": {"temperature": "hot"}}\'',
        "run r01: config: ",
        id="config wrong type",
    ),
    pytest.param("UPDATE runs SET status = 'done'", "run r01: status: expected one of", id="status"),
    pytest.param("UPDATE runs SET started_at = 'yesterday'", "run r01: started_at: ", id="started_at"),
    pytest.param("UPDATE runs SET samples = 1000", "run r01: samples: ", id="samples"),
    pytest.param("UPDATE runs SET tags_json = '[\"../x\"]'", "run r01: tags[0]: ", id="tag"),
    pytest.param("UPDATE answers SET tokens_in = -5 WHERE item_id = 'geo-1'", ".tokens_in: ", id="tokens"),
    pytest.param(
        "UPDATE answers SET sample = 7 WHERE item_id = 'geo-1' AND sample = 1", ".sample: ", id="sample"
    ),
    pytest.param(
        "UPDATE judgments SET error = 'timeout' WHERE item_id = 'geo-1'",
        ".score: has both",
        id="score and error",
    ),
    pytest.param(
        "UPDATE items SET item_json = '{\"id\": \"geo-1\"}' WHERE item_id = 'geo-1'",
        "run r01: rows: ",
        id="item unreadable",
    ),
    # numbers past what the target, or a sum of them, can hold
    pytest.param("UPDATE answers SET tokens_in = 4611686018427387904", ".tokens_in: expected a whole number from 0 to 2147483647", id="tokens 2**62"),
    pytest.param("UPDATE answers SET length = 1099511627776", ".length: ", id="length 2**40"),
    pytest.param("UPDATE answers SET finished_at = 1e300", ".finished_at: ", id="finished_at 1e300"),
    pytest.param("UPDATE judgments SET latency_ms = 1e20", ".latency_ms: ", id="latency 1e20"),
    # texts longer than a run keeps
    pytest.param("UPDATE answers SET text = printf('%.20001c', 'a')", ".text: 20,001 characters", id="answer over the cap"),
    pytest.param("UPDATE judgments SET rationale = printf('%.20001c', 'w')", ".rationale: 20,001 characters", id="rationale over the cap"),
    # JSON columns of the wrong type, times lookingglass never writes
    pytest.param("UPDATE runs SET tags_json = '{\"nightly\": 1}'", "run r01: tags: expected a list", id="tags an object"),
    pytest.param("UPDATE runs SET tags_json = '\"nightly\"'", "run r01: tags: expected a list", id="tags a string"),
    pytest.param("UPDATE runs SET rubrics_json = 'x'", "run r01: rubrics: is not JSON", id="rubrics not JSON"),
    pytest.param("UPDATE runs SET config_json = 'null'", "run r01: config: expected an object, got null", id="config null"),
    pytest.param("UPDATE runs SET ended_at = '2026-W44-1T00:00Z'", "run r01: ended_at: ", id="ended_at a week date"),
    pytest.param("UPDATE baselines SET set_at = '2026-11-02 00:00:00+00:00'", 'baseline "prod": ', id="baseline time"),
    pytest.param("UPDATE runs SET run_id = '-r01'; UPDATE items SET run_id = '-r01'", 'run "-r01": run_id: ', id="run id"),
    # people's scores and the random draws they came from
    pytest.param("UPDATE review_draws SET asked = 1099511627776", 'draw "d1".asked: ', id="draw asked 2**40"),
    pytest.param("UPDATE review_draws SET drawn_at = 'yesterday'", 'draw "d1".drawn_at: ', id="draw time"),
    pytest.param("UPDATE review_draws SET areas_json = '[{\"area\": \"geo\"}]'", '"answers" is missing', id="draw areas"),
    pytest.param("UPDATE human_scores SET score = 9", "by ana.score: ", id="human score 9"),
]
# fmt: on


def damaged_source(tmp_path: Path, sql: str) -> Path:
    """A SQLite store holding r01, a baseline approval, a random draw and a person's score, then ``sql`` (one
    statement or several, with checks and foreign keys off)."""
    source = tmp_path / "source"
    when = "2026-11-02T00:00:00+00:00"
    with Store(source) as store:
        make_run(store, "r01", SCORES)
        store.set_baseline("prod", "r01", when)
        draw = Draw("d1", "r01", 7, 2, when, (AreaDraw("geo", 3, 2),), (("geo-1", 0), ("geo-2", 0)))
        with store.backend.transaction():
            bring_over(store, [draw], [HumanScore("r01", "geo-1", "geo", 0, "ana", 4, when, True, "d1")])
    db = sqlite3.connect(source / "evals.db")
    db.execute("PRAGMA ignore_check_constraints = ON")
    db.execute("PRAGMA foreign_keys = OFF")
    for statement in sql.split(";"):
        db.execute(statement)
    db.commit()
    db.close()
    return source


@pytest.mark.parametrize(("sql", "words"), SOURCE_DAMAGE)
def test_copy_checks_the_whole_source_first_and_writes_nothing_of_a_bad_one(
    sql: str, words: str, target: str, tmp_path: Path
) -> None:
    source = damaged_source(tmp_path, sql)
    before = dump(target, tmp_path)
    result = CliRunner().invoke(main, ["store", "copy", str(source), target], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and words in result.output, result.output
    assert "nothing was copied" in result.output
    assert dump(target, tmp_path) == before


def test_copy_writes_runs_and_baselines_in_one_go(tmp_path: Path, target: str) -> None:
    source = damaged_source(tmp_path, "SELECT 1")
    with Store(source) as src, Store(tmp_path / "reports", url=target) as dst:
        report = copy_store(src, dst)
        assert report.added == ["r01"] and report.baselines == 1
        assert dst.baseline("prod").run_id == "r01"
        assert dst.answers("r01") == src.answers("r01") and dst.verdicts("r01") == src.verdicts("r01")
        again = copy_store(src, dst)
        assert again.added == [] and again.updated == ["r01"] and again.baselines == 0


# -- memory ------------------------------------------------------------------------------------------------

RUNS, ITEMS = 40, 500
"""20,000 items, each answered once with about 2 KB of text: some 40 MB of text in the export."""
BOUND = 8 * 2**20
"""Peak memory an import may add: a fifth of the export's text alone, which loading it whole would hold."""


def big_export(exports: Path, folder: Path, runs: int = RUNS, size: int = ITEMS) -> int:
    """``runs`` runs of ``size`` items each, in the format of r01's export; the bytes of text written."""
    template = manifest_of(exports / "r01")
    row = json.loads((exports / "r01" / "results.jsonl").read_text().splitlines()[0])
    written = 0
    for r in range(runs):
        run_id = f"big{r:03d}"
        items = [
            {
                **template["items"][0],
                "id": f"q-{i}",
                "area": f"area-{i % 10}",
                "question": f"question {i} " * 20,
            }
            for i in range(size)
        ]
        (folder / run_id).mkdir(parents=True)
        written += len(
            write_manifest(folder / run_id, {**template, "run_id": run_id, "samples": 1, "items": items})
        )
        with (folder / run_id / "results.jsonl").open("w") as out:
            for i in range(size):
                text = json.dumps({**row, "run_id": run_id, "id": f"q-{i}", "answer": f"answer {i} " * 150,
                                   "rationale": f"because {i} " * 40, "answer_length": None}) + "\n"  # fmt: skip
                written += len(text)
                out.write(text)
    return written


def peak_of(work: Callable[[], Any]) -> tuple[Any, int]:
    """What ``work()`` returns, and the most memory it held at once (bytes, ``tracemalloc``)."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = work()
        return result, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_import_memory_stays_flat_in_the_number_of_items(exports: Path, tmp_path: Path) -> None:
    written = big_export(exports, tmp_path / "big")
    assert written > 5 * BOUND  # what a load-everything import would hold, at the least
    with Store(tmp_path / "target") as store:
        import_runs(exports / "r01", store)  # the modules an import loads once (numpy for the aggregates)
        report, peak = peak_of(lambda: import_runs(tmp_path / "big", store))
        assert len(report.added) == RUNS
        count = store._execute("SELECT count(*) FROM answers WHERE run_id LIKE 'big%'").fetchone()[0]
    assert count == RUNS * ITEMS
    assert peak < BOUND, f"peak {peak / 2**20:.1f} MiB"


def test_checking_and_writing_hold_no_run_whole(
    exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run of 6,000 items (some 12 MB of text): both passes over it stay under the bound, so an import
    that read a run's items or rows whole (a list of them, or of what it writes) fails here. The per-area
    aggregates computed after the commit read the run's results whole, as ``evals run`` does at its end
    (``Store.save_aggregates``): that is measured by the test above, not here."""
    written = big_export(exports, tmp_path / "big", runs=1, size=6000)
    assert written > BOUND
    with Store(tmp_path / "target") as store:
        import_runs(exports / "r01", store)
        monkeypatch.setattr(transfer, "_save_aggregates", lambda target, manifests: None)
        report, peak = peak_of(lambda: import_runs(tmp_path / "big", store))
        assert report.added == ["big000"]
        assert store._execute("SELECT count(*) FROM answers WHERE run_id = 'big000'").fetchone()[0] == 6000
    assert peak < BOUND, f"peak {peak / 2**20:.1f} MiB"


def test_import_library_errors_are_store_errors(run: Path, tmp_path: Path) -> None:
    write_manifest(run, {**manifest_of(run), "config": []})
    with (
        Store(tmp_path / "t") as store,
        pytest.raises(StoreError, match=re.escape("manifest.json:14: config:")),
    ):
        import_runs(run, store)


def test_an_answer_within_the_runs_own_max_answer_chars_imports(run: Path, tmp_path: Path) -> None:
    """The cap an import checks is the one the run's model recorded (``max_answer_chars``), not the default."""
    manifest = manifest_of(run)
    manifest["config"].setdefault("model", {})["max_answer_chars"] = 50_000
    write_manifest(run, manifest)
    path = run / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["answer"] = "a" * 30_000
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["import", str(run), "--reports", "target"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "target") as store:
        assert max(len(a.text or "") for a in store.answers("r01").values()) == 30_000
    rows[0]["answer"] = "a" * 50_001
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused = CliRunner().invoke(main, ["import", str(run), "--reports", "other"])
    assert refused.exit_code == 2 and "answer: 50,001 characters, more than the 50,000" in refused.output
