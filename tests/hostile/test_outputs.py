"""Every other output is well-formed (issue 10.3): the gate's Markdown, scorecard.md, JUnit XML and
scorecard.json are parsed by real parsers with hostile names in them, and hold exactly the cells, cases
and values they should."""

from __future__ import annotations

import json
import unicodedata
import xml.etree.ElementTree as ET

import pytest
from cases import TEXT, store_run
from click.testing import CliRunner
from markdown_it import MarkdownIt
from markdown_it.token import Token

from evals.cli import main
from evals.config import GateSettings
from evals.render.gate import junit, markdown
from evals.render.markdown import md_text
from evals.render.pages import render_markdown
from evals.scorecard import build_scorecard
from evals.scorecard.decision import decide
from evals.store import Store

AREAS = list(TEXT.values())
_HIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp")


def as_cell(text: str) -> str:
    """What a reader must see of ``text`` in one Markdown line: controls as spaces, whitespace folded."""
    return " ".join("".join(" " if unicodedata.category(c) in _HIDDEN else c for c in text).split())


def parse(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)


def inline_text(token: Token) -> str:
    """The text of an inline token; fails on anything but text (no link, image, HTML, code, emphasis)."""
    kinds = {child.type for child in token.children or []}
    assert kinds <= {"text"}, (kinds, token.content)
    return "".join(child.content for child in token.children or []).replace("\u200b", "")


def table_rows(tokens: list[Token]) -> list[list[Token]]:
    """The inline token of every body cell, row by row."""
    rows, row, in_body = [], None, False
    for i, t in enumerate(tokens):
        if t.type == "tbody_open":
            in_body = True
        elif t.type == "tr_open" and in_body:
            row = []
        elif t.type == "td_open" and row is not None:
            row.append(tokens[i + 1])
        elif t.type == "tr_close" and row is not None:
            rows.append(row)
            row = None
    return rows


def assert_no_markup(tokens: list[Token], headings: int) -> None:
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {
        "link_open",
        "image",
        "html_inline",
        "html_block",
        "code_inline",
        "s_open",
        "blockquote_open",
    }
    assert sum(1 for t in tokens if t.type == "heading_open") == headings


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "reports") as s:
        yield s


def test_gate_markdown_keeps_one_row_per_check_with_the_names_as_text(store):
    store_run(store, "r01", AREAS, per_area=3, suite=TEXT["md_link"], model_id=TEXT["md_mention"])
    store_run(store, "r02", AREAS, per_area=3, suite=TEXT["md_link"], model_id=TEXT["md_html"],
              started_at="2026-11-02T00:00:00+00:00")  # fmt: skip
    verdict = decide(store, "r02", "r01", GateSettings(min_pairs=2))
    tokens = parse(markdown(verdict))
    assert_no_markup(tokens, headings=1)
    rows = table_rows(tokens)
    assert len(rows) == len(verdict.checks) and all(len(r) == 3 for r in rows)
    assert [inline_text(r[0]) for r in rows] == [as_cell(c.name) for c in verdict.checks]
    assert {f"area {as_cell(a)}" for a in AREAS} <= {inline_text(r[0]) for r in rows}
    assert [inline_text(r[2]) for r in rows] == [as_cell(c.message) for c in verdict.checks]
    header = next(tokens[i + 1] for i, t in enumerate(tokens) if t.type == "paragraph_open")
    text = "".join(c.content for c in header.children or [] if c.type == "text")
    assert TEXT["md_html"] in text and TEXT["md_link"] in text
    assert "@octocat" not in text.replace("@\u200b", "@ ")  # no mention: a zero-width space breaks it


def test_gate_markdown_reasons_stay_one_list_item_each(store):
    store_run(store, "r01", ["a"], suite="one\n# Injected heading\n- injected item")
    store_run(store, "r02", ["a"], suite="| two | [x](https://evil.example/) @everyone",
              started_at="2026-11-02T00:00:00+00:00")  # fmt: skip
    verdict = decide(store, "r02", "r01", GateSettings())
    assert verdict.outcome == "cannot decide"
    tokens = parse(markdown(verdict))
    assert_no_markup(tokens, headings=1)
    items = [tokens[i + 2] for i, t in enumerate(tokens) if t.type == "list_item_open"]
    assert [inline_text(t) for t in items] == [as_cell(r) for r in verdict.reasons]


def test_step_summary_is_the_same_escaped_markdown(store, tmp_path, monkeypatch):
    store_run(store, "r01", AREAS, per_area=3)
    store_run(store, "r02", AREAS, per_area=3, started_at="2026-11-02T00:00:00+00:00")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = CliRunner().invoke(main, ["gate", "--candidate", "r02", "--baseline", "r01", "--reports",
                                       str(tmp_path / "reports")])  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    tokens = parse(summary.read_text())
    assert_no_markup(tokens, headings=1)
    assert len(table_rows(tokens)) == len(AREAS) + 2  # each area, overall, errors
    # The same Markdown on stdout, not wrapped at the terminal's width; the terminal spells the invisible
    # mention breaker out, as it does every invisible character.
    stdout = parse(result.stdout.replace("\\u200b", "\u200b"))
    assert [inline_text(r[0]) for r in table_rows(stdout)] == [inline_text(r[0]) for r in table_rows(tokens)]


def test_scorecard_markdown_has_one_row_per_area_with_its_name(store):
    store_run(store, "r01", AREAS, per_area=2, suite=TEXT["md_heading"], model_id=TEXT["md_image"])
    card = build_scorecard(store, "r01")
    tokens = parse(render_markdown(card))
    assert_no_markup(tokens, headings=1)
    rows = table_rows(tokens)
    assert len(rows) == len(card.areas) == len(AREAS)
    assert [inline_text(r[0]).removesuffix(" ⚠ weak") for r in rows] == [as_cell(a.area) for a in card.areas]
    heading = next(tokens[i + 1] for i, t in enumerate(tokens) if t.type == "heading_open")
    assert inline_text(heading) == f"lookingglass scorecard: {TEXT['md_heading']} · local"


def test_junit_parses_with_any_area_name(store, tmp_path):
    store_run(store, "r01", AREAS, per_area=3, suite=TEXT["xml_controls"])
    store_run(store, "r02", AREAS, per_area=3, suite=TEXT["xml_controls"], started_at="2026-11-02T00:00:00+00:00",
              score=1)  # fmt: skip
    verdict = decide(store, "r02", "r01", GateSettings(min_pairs=2))
    root = ET.fromstring(junit(verdict))
    names = [case.get("name") for case in root.iter("testcase")]
    assert len(names) == len(verdict.checks) == int(root.get("tests"))
    assert f"area {TEXT['xml_syntax']}" in names and f"area {TEXT['md_html']}" in names
    assert "area a\\x01b\\x0bc\\ufffe" in names  # characters XML cannot carry, spelled out
    assert root.get("name") == "lookingglass.a\\x01b\\x0bc\\ufffe"
    assert int(root.get("failures")) >= 1


def test_scorecard_json_round_trips_every_name(store, tmp_path):
    store_run(store, "r01", AREAS, per_area=2)
    result = CliRunner().invoke(main, ["report", "r01", "--reports", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "reports/runs/r01/scorecard.json").read_text(encoding="utf-8"))
    assert sorted(a["area"] for a in card["areas"]) == sorted(AREAS)


def test_only_real_mentions_are_broken():
    # GitHub links @name after a space or punctuation, never inside a word: a rubric@hash stays readable.
    assert md_text("rubric correctness@9c15 by me@example.org") == "rubric correctness@9c15 by me@example.org"
    assert md_text("ping @octocat and @team") == "ping @\u200boctocat and @\u200bteam"
