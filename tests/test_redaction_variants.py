"""Identifiers written so a pattern would miss them (entities, percent-escapes, invisible characters,
fullwidth forms, numbers split across lines) are still replaced, whole, and nothing around them changes;
evals.yaml's own patterns join a suite's; ``default_sensitivity`` is validated."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import load_config
from evals.errors import ConfigError
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, last_user_text, text_reply
from evals.outbound.normalise import normalise
from evals.outbound.redaction import CustomPattern, Redactor, combined_patterns
from evals.records import Item

EMAIL = "jane.doe@example.com"
EMAILS = [
    "jane.doe&#64;example.com",  # decimal entity
    "jane.doe&#0064;example.com",  # decimal with leading zeros
    "jane.doe&#x40;example.com",  # hex entity
    "jane.doe&#X40;example.com",  # hex, capital X
    "jane.doe&commat;example.com",  # named entity
    "jane&#46;doe&#64;example&#46;com",  # every separator an entity
    "jane.doe&amp;#64;example.com",  # encoded twice
    "jane.doe%40example.com",  # percent-escape
    "jane%2edoe%40example%2Ecom",  # lower and upper case hex
    "jane.doe%2540example.com",  # percent-escaped percent
    "jane.doe&#37;40example.com",  # an entity spelling a percent-escape
    "ja\u200bne.doe@example.com",  # zero-width space in the local part
    "jane\u200d.doe@example.com",  # zero-width joiner
    "jane.doe\u2060@example.com",  # word joiner before the @
    "jane.d\u00adoe@example.com",  # soft hyphen
    "jane.doe@exa\u200cmple.com",  # zero-width non-joiner in the domain
    "jane.doe@example\u200e.com",  # left-to-right mark in the domain
    "jane.doe@exam\ufeffple.com",  # byte-order mark inside
    "jane.doe\U000e0041@example.com",  # a tag character
    "jane.doe\ufe0f@example.com",  # a variation selector
    "jane.doe%E2%80%8B@example.com",  # a percent-escaped zero-width space
    "jane.doe&#8203;@example.com",  # an entity zero-width space
    "jane.doe\x00@example.com",  # a control character
    "jane.doe＠example.com",  # fullwidth @
    "ｊａｎｅ．ｄｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # fullwidth throughout
    "jane.doe&#xFF20;example.com",  # an entity spelling a fullwidth @
    "jane.doe&#064example.com",  # decimal, no semicolon
    "jane.doe&#x40example.com",  # hex, no semicolon, a hex letter after it
    "jane.doe&#x0040;example.com",  # hex with leading zeros
    "Jane.Doe&#X40;Example.Com",  # mixed case throughout
    "JANE.DOE@EXAMPLE.COM",  # capitals
    "jane.doe&COMMAT;example.com",  # a named entity in capitals
    "jane.doe%252540example.com",  # percent-escaped three times
    "jane.doe%u0040example.com",  # a JavaScript %u escape
    "jane.doe\\u0040example.com",  # a JSON/Python escape
    "jane.doe\\x40example.com",  # a \x escape
    "jane.doe\ufe6bexample.com",  # small commercial at
    "jane.doe@example\u3002com",  # ideographic full stop
    "jane.doe\u034f@example.com",  # combining grapheme joiner
    "jane.doe\u180e@example.com",  # Mongolian vowel separator
    "jane.doe [at] example [dot] com",  # spelled out in brackets
    "jane.doe(AT)example(DOT)com",  # in parentheses, capitals
    "jane.doe @ example.com",  # spaces around the @
    "jane.doe\u00a0@\u00a0example.com",  # no-break spaces around the @
    "jane.doe@\nexample.com",  # a line break after the @
    "jane.doe\r\n@example.com",  # a CRLF before the @
    "jane.doe@example.\ncom",  # a line break at a dot of the domain
    "jane.\ndoe@example.com",  # a line break at a dot of the local part
]
CARDS = [
    "4111 1111\n1111 1111",  # split between groups
    "4111 1111\r\n1111 1111",  # CRLF
    "4111-1111-\r\n1111-1111",  # dashes, break after the dash
    "4111-1111\n-1111-1111",  # break before the dash
    "4111 1111 \n 1111 1111",  # spaces around the break
    "4111 1111\t\n1111 1111",  # a tab before it
    "4111 11\n11 1111 1111",  # split inside a group
    "4111111111\n111111",  # no groups at all
    "4111 1111\u20281111 1111",  # Unicode line separator
    "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
    "4111\u202f1111\u202f1111\u202f1111",  # narrow no-break spaces
    "4111\u20071111\u20071111\u20071111",  # figure spaces
    "４１１１ １１１１ １１１１ １１１１",  # fullwidth digits
    "4111\u200b1111 1111 1111",  # zero-width space between groups
    "4111&#32;1111 1111 1111",  # an entity space
    "4111 1111\r1111 1111",  # a lone CR
    "4111 1111\x0b1111 1111",  # a vertical tab
    "4111 1111 1111\n\t1111",  # an indented continuation line
    "3782 822463\n10005",  # a 15-digit card
    "4111 1111&#10;1111 1111",  # an entity line break
    "4111 1111%0A1111 1111",  # a percent-escaped line break
    "4111%201111%201111%201111",  # percent-escaped spaces
    "4111\t1111\t1111\t1111",  # tabs
    "4111  1111  1111  1111",  # double spaces
    "4111.1111.1111.1111",  # dots
    "4111/1111/1111/1111",  # slashes
    "4111_1111_1111_1111",  # underscores
    "4111\u20131111\u20131111\u20131111",  # en dashes
    "4111\u22121111\u22121111\u22121111",  # minus signs
    "4111\u20111111\u20111111\u20111111",  # non-breaking hyphens
    "4111\u30001111\u30001111\u30001111",  # ideographic spaces
]
PHONES = [
    "(212) 555-\n0147",
    "212 555\n0147",
    "212-555-\r\n0147",
    "+1 212\n555 0147",
    "(212)\n555-0147",
    "212.555.\n0147",
    "212\u00a0555\u00a00147",
    "２１２－５５５－０１４７",
    "(212)\u2013555\u20130147",
    "212\u2011555\u20110147",
    "212 555\t0147",
    "212.555\r\n.0147",
    "+44 20 7946\n0958",
]
IBANS = [
    "GB82 WEST 1234\n5698 7654 32",  # digits on both sides of the break
    "GB82 WEST\n1234 5698 7654 32",  # letters before it
    "GB82\nWEST 1234 5698 7654 32",  # letters after it
    "GB82 WEST 1234 5698\r\n7654 32",
    "GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032",
    "gb82 west 1234 5698 7654 32",  # lower case
    "Gb82 West 1234 5698 7654 32",  # mixed case
    "DE89 3704 0044\n0532 0130 00",
    "GB82 WEST 1234 5698 7654\n32",
]
SSNS = [
    "536-22-\n1234",
    "536\u200b-22-1234",
    "５３６-２２-１２３４",
    "536\u201322\u20131234",
    "536-\n22-1234",
    "536 22 1234",
    "536.22.1234",
]
VARIANTS = (
    [("EMAIL", "Write to {} today.", v) for v in EMAILS]
    + [("CREDIT_CARD", "The card {} was charged.", v) for v in CARDS]
    + [("PHONE", "Call her on {} please.", v) for v in PHONES]
    + [("IBAN", "Pay to IBAN {} now.", v) for v in IBANS]
    + [("SSN", "His SSN is {} on file.", v) for v in SSNS]
    + [("IP", "Server {} is down.", "192.168.100.200")]  # four groups of 3 digits: an address, not a card
)


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("kind", "sentence", "written"), VARIANTS, ids=[ascii(v[2]) for v in VARIANTS])
def test_an_identifier_written_unusually_is_replaced_whole(redactor, kind, sentence, written):
    red = redactor.redact([sentence.format(written)])
    # The whole written form is gone (no local part left beside a replaced domain), the rest is as written.
    assert red.texts == (sentence.format(f"<{kind}_1>"),)
    assert red.mapping == {f"<{kind}_1>": written}
    assert red.counts == {kind: 1}


def test_invisible_characters_around_an_identifier_stay_where_they_were(redactor):
    red = redactor.redact(["Write to \ufeffjane.doe@example.com\u200b today."])
    assert red.texts == ("Write to \ufeff<EMAIL_1>\u200b today.",)
    assert red.mapping == {"<EMAIL_1>": EMAIL}


def test_restoring_a_reply_gives_the_values_as_written(redactor):
    red = redactor.redact(["Mail jane.doe&#64;example.com, card 4111 1111\n1111 1111."])
    assert red.texts == ("Mail <EMAIL_1>, card <CREDIT_CARD_1>.",)
    assert red.restore("I wrote to <EMAIL_1> about <CREDIT_CARD_1>.") == (
        "I wrote to jane.doe&#64;example.com about 4111 1111\n1111 1111."
    )


def test_one_identifier_written_two_ways_in_an_item_gets_one_placeholder(redactor):
    item = Item(id="i", area="a", question="Mail jane.doe&#64;example.com?", reference=EMAIL)
    sent = redactor.redact_item(item, "Write to jane.doe%40example.com.")
    assert (sent.item.question, sent.item.reference, sent.answer) == (
        "Mail <EMAIL_1>?",
        "<EMAIL_1>",
        "Write to <EMAIL_1>.",
    )
    assert sent.redacted.mapping == {"<EMAIL_1>": "jane.doe&#64;example.com"}  # as first written


def test_prose_around_identifiers_is_sent_byte_for_byte(redactor):
    prose = "AT&amp;T says 100% of ﬁles — “all” — are café\u00a0menus &lt;b&gt;."
    tail = "Up 12%\n34 more%20here\u200b!"
    text = f"Dear jane.doe&#64;example.com,\r\n{prose}\nCard: 4111 1111\n1111 1111. {tail}"
    red = redactor.redact([text])
    assert red.texts == (f"Dear <EMAIL_1>,\r\n{prose}\nCard: <CREDIT_CARD_1>. {tail}",)


@pytest.mark.parametrize(
    "text",
    [
        "Fish &amp; chips cost 50% less at café Zoë — “quoted” — see &lt;menu&gt;.",
        "Line one has 12 apples\nline two has 34 pears.\r\n\r\nA new paragraph with ﬁne print\u00a0here.",
        "Steps:\n1. Open the form\n2. Sign it\n3. Send it",
        "R&D grew 7%; AT&T fell 3%. 100%25 of %zz is not an escape, nor is &unknown; or &#;.",
        "Fullwidth ＡＢＣ and ①②③ and the word ﬁne\u200b, with a soft\u00adhyphen.",
        "",
        "\u200b\u200b",
        "Version 100.200.300 is up; see 3.14159 and 10.000.000 rows.",
        "Send it to the team @ noon, reply @jane, meet (at) the lobby [at] ten.",
        "Use \\x41 or \\u00e9 in C:\\users\\xavier; tabs\tand  spaces  stay.",
        "Rows 12\t34 and 56  78 were read; the 1990\u20132000 decade.",
    ],
)
def test_text_with_no_identifiers_is_unchanged(redactor, text):
    red = redactor.redact([text])
    assert red.texts == (text,)
    assert red.counts == {}


def test_a_suite_pattern_matches_the_normalised_text(redactor):
    patterns = [CustomPattern(name="EMPLOYEE_ID", regex=r"\bEMP-\d{5}\b")]
    red = Redactor(patterns).redact(["Employee ＥＭＰ－１２３４５ and EMP&#45;54321 signed."])
    assert red.texts == ("Employee <EMPLOYEE_ID_1> and <EMPLOYEE_ID_2> signed.",)


def test_a_run_sends_an_external_judge_no_part_of_an_unusually_written_identifier(tmp_path, monkeypatch):
    # The two misses inside `evals run`: an email whose @ is an entity, an escape or carries a
    # zero-width character (the domain was replaced, the local part leaked); a card split over two lines.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-7")
    written = {f"i{n:02}": ("EMAIL", v) for n, v in enumerate(EMAILS)}
    written |= {f"i{n + 50}": ("CREDIT_CARD", v) for n, v in enumerate(CARDS)}
    items = [
        {"id": key, "area": "a", "question": f"What is on file? It says {v}.", "reference": v}
        for key, (_, v) in written.items()
    ]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"suite": "s", "items": items}))
    answer = text_reply(lambda question: question.rpartition("says ")[2].rstrip("."))
    with FakeOpenAI(answer) as model, FakeAnthropic(grade_by_reference) as judge:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m", "max_retries": 0}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "c",
                                  "max_retries": 0, "external": True}},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(main, ["run", "--suite", "suite.yaml", "--judge", "claude"])
        assert result.exit_code == 0, result.output
        prompts = [last_user_text(body) for body in judge.requests]
    blocks = sorted(re.findall(r"<question>\n(.*?)\n</question>.*?<reference>\n(.*?)\n</reference>.*?"
                               r"<answer>\n(.*?)\n</answer>", "\n".join(prompts), re.S))  # fmt: skip
    expected = sorted(
        (f"What is on file? It says <{kind}_1>.", f"<{kind}_1>", f"<{kind}_1>")
        for kind, _ in written.values()
    )
    assert blocks == expected  # each identifier replaced whole, in question, reference and answer


# -- the normalised view and its map ---------------------------------------------------------------------


def test_plain_text_is_not_copied_or_mapped():
    text = "Plain ASCII: nothing to decode, no line breaks."
    view = normalise(text)
    assert view.text is text
    assert view.steps == ()


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("a&#64;b &#x40; &commat; &amp;#64;", "a@b @ @ @"),
        ("%41%2e%2E %20 %zz %E2%82%AC %ff", "A.. %20 %zz € %ff"),
        ("x\u200by\u00adz\u2060\ufeff", "xyz"),
        ("ＡＢ１２＠", "AB12@"),
        ("12\n34 ab\ncd 56\nxy ab\n78\n\n90", "1234 ab\ncd 56 xy ab 78\n\n90"),
    ],
)
def test_the_normalised_text(written, normalised):
    assert normalise(written).text == normalised


def test_every_normalised_span_maps_inside_the_text_as_written_in_order():
    pieces = ["a", "7", " ", "\n", "\r\n", "&#64;", "&amp;", "&", "%40", "%", "%E2%80%8B", "\u200b", "\u00ad",
              "＠", "４", "ﬁ", "e\u0301", "\u00a0", "-", "\ufe0f", "&#x20AC;", "\x00"]  # fmt: skip
    rng = random.Random(18)
    for _ in range(400):
        written = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        view = normalise(written)
        previous = (0, 0)
        for index in range(len(view.text)):
            start, end = view.span(index, index + 1)
            assert 0 <= start < end <= len(written), (written, index)
            assert (start, end) >= previous, (written, index)  # the map keeps the order of the text
            previous = (start, end)
        if view.text:
            assert view.span(0, len(view.text))[1] <= len(written)


@pytest.mark.parametrize(
    "piece",
    [
        "&#64;",
        "%40",
        "\u200b",
        "1\n",
        "＠",
        "&amp;",
        "%",
        "&",
        "e\u0301",
        "4111 1111\n",
        "&#1234567",
        "4111.",
        "a [at] ",
        "a @ ",
        "\\u0040",
        "a.\n",
        "a@b.\n",
        "1\t",
        "1  ",
        "1%20",
        "\u2013",
    ],
)
def test_normalising_is_linear_in_the_text(piece):
    # 200,000 characters of the worst piece for each step: quadratic work would take minutes.
    text = piece * (200_000 // len(piece))
    started = time.perf_counter()
    view = normalise(text)
    view.span(0, len(view.text)) if view.text else None
    assert time.perf_counter() - started < 10


# -- patterns in evals.yaml ------------------------------------------------------------------------------


EMPLOYEE = CustomPattern(name="EMPLOYEE_ID", regex=r"\bEMP-\d{5}\b", context=("employee",))
TICKET = CustomPattern(name="TICKET", regex=r"\bT-\d{7}\b")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "evals.yaml"
    path.write_text(text)
    return path


def test_config_patterns_are_read_from_evals_yaml(tmp_path):
    path = _write(
        tmp_path,
        "redaction:\n  patterns:\n    - {name: TICKET, regex: '\\bT-\\d{7}\\b'}\n"
        "    - name: EMPLOYEE_ID\n      regex: '\\bEMP-\\d{5}\\b'\n"
        "      context: [employee]\n      score: 0.6\n",
    )
    config = load_config(path)
    assert config.redaction.patterns == (TICKET, EMPLOYEE)
    assert config.default_sensitivity == "internal"


@pytest.mark.parametrize(
    ("yaml_text", "error"),
    [
        ("redaction:\n  patterns:\n    - name: EMP\n      regex: 'EMP-(\\d'\n",
         ":4: redaction.patterns.0.regex: not a valid regular expression"),
        ("redaction:\n  patterns:\n    - {name: emp, regex: 'x'}\n",
         ":3: redaction.patterns.0.name: expected capitals, digits and '_'"),
        ("redaction:\n  patterns:\n    - {name: EMP, regex: 'x*'}\n",
         ":3: redaction.patterns.0.regex: the regular expression matches empty text"),
        ("redaction:\n  patterns:\n    - {name: EMP, regex: 'x', colour: red}\n",
         ":3: redaction.patterns.0.colour: unknown key"),
        ("redaction:\n  patterns:\n    - {name: EMP, regex: 'x'}\n    - {name: EMP, regex: 'y'}\n",
         ":4: redaction.patterns.1.name: pattern name 'EMP' is given twice"),
        ("default_sensitivity: secret\n",
         ":1: default_sensitivity: Input should be 'public', 'internal' or 'restricted'"),
    ],
)  # fmt: skip
def test_a_bad_config_pattern_or_level_is_a_file_line_error(tmp_path, yaml_text, error):
    path = _write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{error}" in str(caught.value)


def test_a_bad_config_pattern_fails_any_command_with_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "redaction:\n  patterns:\n    - {name: EMP, regex: '('}\n")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code != 0
    assert "evals.yaml:3: redaction.patterns.0.regex: not a valid regular expression" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("level", ["public", "internal", "restricted"])
def test_default_sensitivity_takes_each_level(tmp_path, level):
    assert load_config(_write(tmp_path, f"default_sensitivity: {level}\n")).default_sensitivity == level


def test_config_and_run_patterns_are_combined_once_each_by_name():
    combined = combined_patterns([TICKET, EMPLOYEE], [EMPLOYEE])
    assert combined == (EMPLOYEE, TICKET)
    red = Redactor(combined).redact(["Employee EMP-12345 opened T-1234567."])
    assert red.texts == ("Employee <EMPLOYEE_ID_1> opened <TICKET_1>.",)


@pytest.mark.parametrize(
    ("other", "differ"),
    [
        (CustomPattern(name="EMPLOYEE_ID", regex=r"\bE\d{5}\b", context=("employee",)), "regex"),
        (EMPLOYEE.model_copy(update={"context": ("staff",), "score": 0.1}), "context and score"),
    ],
)  # fmt: skip
def test_one_name_with_two_definitions_is_a_config_error(other, differ):
    with pytest.raises(ConfigError) as caught:
        combined_patterns([EMPLOYEE], [other])
    message = str(caught.value)
    assert f"redaction pattern 'EMPLOYEE_ID' is defined twice with a different {differ}" in message
    assert "redaction.patterns in evals.yaml and the suite's redact:" in message
    assert "\n" not in message


def test_the_version_follows_the_patterns_not_their_order():
    versions = {
        Redactor(combined_patterns([], [EMPLOYEE])).version,
        Redactor(combined_patterns([TICKET], [EMPLOYEE])).version,
        Redactor(combined_patterns([TICKET], [EMPLOYEE.model_copy(update={"score": 0.5})])).version,
    }
    assert len(versions) == 3
    assert Redactor([TICKET, EMPLOYEE]).version == Redactor([EMPLOYEE, TICKET]).version
