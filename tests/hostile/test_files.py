"""Hostile and careless files: every file a user writes is read defensively and fails in one line.

Add a case in one line: a row of ``HOSTILE`` (what the file holds, the line and the words of the error).
Each row is tried as a YAML suite, ``evals.yaml``, a rubric and a gate policy (YAML rows) or as a JSONL
suite (JSON rows).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals import userfiles
from evals.cli import main
from evals.config import GateSettings, load_config
from evals.errors import ConfigError, EvalsError, RubricError, SuiteError
from evals.judge.rubrics import read_rubric
from evals.scorecard.decision import load_settings
from evals.suites import find_problems, load_suite
from evals.userfiles import MAX_ALIAS_NODES, MAX_DEPTH, UserFileError, parse_json, parse_yaml, read_text


def billion_laughs(levels: int = 9) -> str:
    """The classic: each anchor is a list of nine aliases of the previous one (9**9 strings)."""
    text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, levels):
        text += f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]\n"
    return text + f"items: *a{levels - 1}\n"


def deep_alias() -> str:
    """Shallow as written, deep once aliases are expanded: each anchor nests the previous one."""
    text = "a0: &a0 [x]\n"
    for level in range(1, 40):
        text += f"a{level}: &a{level} [[*a{level - 1}]]\n"
    return text


# (id, YAML or JSON text, expected 1-based line, words of the error)
HOSTILE = [
    ("billion-laughs", billion_laughs(), 6, "aliases expand to more than"),
    ("deep-flow", "items: " + "[" * 200 + "]" * 200 + "\n", 1, f"nested more than {MAX_DEPTH} levels"),
    (
        "deep-block",
        "items:\n" + "".join("  " * i + "- \n" for i in range(1, 100)),
        MAX_DEPTH + 1,
        "nested more",
    ),
    ("deep-through-aliases", deep_alias(), 32, f"nested more than {MAX_DEPTH} levels"),
    (
        "duplicate-key",
        "description: one\ncriteria: [x]\ndescription: two\n",
        3,
        "duplicate key (first on line 1)",
    ),
    ("control-char", "description: \x07\n", 1, "U+0007 is not allowed"),
    ("huge-int", "description: x\nweight: 1" + "0" * 5000 + "\n", 2, "digits"),  # int() refuses > 4300
]
JSON_HOSTILE = [
    ("deep", '{"id": "q1", "metadata": ' + "[" * 100 + "]" * 100 + "}", "nested more than"),
    ("duplicate-key", '{"id": "q1", "area": "a", "question": "q?", "id": "q2"}', "duplicate key 'id'"),
    ("deep-in-string-is-fine", '{"id": "q1", "area": "a", "question": "' + "[" * 100 + '"}', None),
    (
        "line-separators-in-a-string",
        '{"id": "q1", "area": "a", "question": "one\u2028two\x85three\u2029?"}',
        None,
    ),
    ("lone-surrogate", '{"id": "q1", "area": "a", "question": "q\\ud800?"}', "surrogate"),
    (
        "huge-int",
        '{"id": "q1", "area": "a", "question": "q?", "metadata": {"w": 1' + "0" * 5000 + "}}",
        "digits",
    ),
    ("nan", '{"id": "q1", "area": "a", "question": "q?", "metadata": {"w": NaN}}', "NaN"),
    ("infinity", '{"id": "q1", "area": "a", "question": "q?", "reference": -Infinity}', "Infinity"),
    ("overflow", '{"id": "q1", "area": "a", "question": "q?", "reference": 1e999}', "finite"),
    ("control-in-area", '{"id": "q1", "area": "a\\u001b[2J", "question": "q?"}', "control character"),
    ("bidi-in-id", '{"id": "q1\\u202e", "area": "a", "question": "q?"}', "control character"),
    (
        "control-in-tag",
        '{"id": "q1", "area": "a", "question": "q?", "tags": ["x\\u0007"]}',
        "control character",
    ),
    ("blank-tag", '{"id": "q1", "area": "a", "question": "q?", "tags": ["ok", " "]}', "blank"),
]


@pytest.mark.parametrize(("name", "text", "line", "words"), HOSTILE, ids=[case[0] for case in HOSTILE])
@pytest.mark.parametrize("kind", ["suite", "config", "rubric", "policy"])
def test_hostile_yaml_is_refused_with_its_line(tmp_path, kind, name, text, line, words):
    path = tmp_path / ("evals.yaml" if kind == "config" else f"{kind}.yaml")
    path.write_text(text)
    if kind == "suite":
        problems = find_problems(path)
        assert any(p.line == line and words in p.message for p in problems), problems
        return
    load = {
        "config": load_config,
        "rubric": read_rubric,
        "policy": lambda path: load_settings(GateSettings(), path),
    }
    error = {"config": ConfigError, "rubric": RubricError, "policy": ConfigError}[kind]
    with pytest.raises(error) as caught:
        load[kind](path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and words in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("name", "line", "words"), JSON_HOSTILE, ids=[c[0] for c in JSON_HOSTILE])
def test_hostile_jsonl_lines_are_problems_with_their_line(tmp_path, name, line, words):
    good = '{"id": "q0", "area": "a", "question": "fine?"}'
    (tmp_path / "s.jsonl").write_text(good + "\n" + line + "\n")
    problems = find_problems(tmp_path / "s.jsonl")
    if words is None:
        assert problems == []
    else:
        assert [(p.line, words in p.message) for p in problems] == [(2, True)], problems


def test_billion_laughs_is_refused_before_any_expansion():
    # Counted while composing: no more than the limit is ever built, whatever the file asks for.
    with pytest.raises(UserFileError, match="aliases expand"):
        parse_yaml(billion_laughs(levels=30), "x.yaml")


def test_aliases_within_the_limit_still_work():
    text = "base: &base {area: geo, tags: [a]}\nitems:\n  - {<<: *base, id: q1}\n  - {<<: *base, id: q2, area: x}\n"
    data = parse_yaml(text, "s.yaml")
    assert data["items"][1] == {"area": "x", "tags": ["a"], "id": "q2"}  # an explicit key overrides a merge
    assert MAX_ALIAS_NODES >= 100_000  # room for a large suite sharing a system prompt per item


def test_deep_json_does_not_raise_recursion_error():
    with pytest.raises(ValueError, match="nested more than"):
        parse_json("[" * 100_000 + "]" * 100_000)


def test_duplicate_keys_in_a_yaml_suite_are_all_reported(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("items:\n  - id: q1\n    area: a\n    question: one?\n    question: two?\n")
    assert [(p.line, p.field) for p in find_problems(path)] == [(5, "items[0].question")]


def test_duplicate_model_in_evals_yaml(tmp_path):
    path = tmp_path / "evals.yaml"
    path.write_text("models:\n  local: {model: a}\n  local: {model: b}\n")
    with pytest.raises(ConfigError, match=r"evals.yaml:3: local: duplicate key \(first on line 2\)"):
        load_config(path)


def test_a_link_out_of_the_suite_folder_is_not_followed(tmp_path):
    secret = "OPENAI_API_KEY=sk-live-do-not-print-me"
    (tmp_path / ".env").write_text(secret + "\n")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "good.jsonl").write_text('{"id": "q1", "area": "a", "question": "q?"}\n')
    (suite / "leak.yaml").symlink_to(tmp_path / ".env")
    (suite / "inside.jsonl").symlink_to(suite / "good.jsonl")  # a link within the folder is read
    problems = find_problems(suite)
    assert len(problems) == 2  # the link out, and the id repeated through the inside link
    leak = next(p for p in problems if p.path.endswith("leak.yaml"))
    assert "outside the suite folder" in leak.message
    result = CliRunner().invoke(main, ["suite", "validate", str(suite)])
    assert result.exit_code == 1 and "leak.yaml" in result.output
    assert "sk-live" not in result.output and "OPENAI_API_KEY" not in result.output


@pytest.mark.parametrize("field", ["id", "area"])
@pytest.mark.parametrize("blank", [" ", "\t", "   \u3000"])
def test_whitespace_only_ids_and_areas_are_errors(tmp_path, field, blank):
    item = {"id": "q1", "area": "a", "question": "q?", field: blank}
    path = tmp_path / "s.yaml"
    path.write_text("items:\n  - " + "\n    ".join(f"{k}: {json.dumps(v)}" for k, v in item.items()) + "\n")
    problems = find_problems(path)
    assert [(p.field, "blank" in p.message) for p in problems] == [(f"items[0].{field}", True)]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _without_blocking(call):
    """Run ``call`` in a thread; if it blocked on the FIFO, open the writer end to release it, then fail."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_outcome(call)), daemon=True)
    thread.start()
    thread.join(timeout=30)  # not a timing assertion: only a guard that turns a hang into a failure
    return result[0] if result else pytest.fail("blocked reading a FIFO")


def _outcome(call):
    try:
        return call()
    except EvalsError as exc:
        return exc


@pytest.mark.parametrize("kind", ["suite", "config", "rubric-path", "policy"])
def test_fifos_and_folders_given_as_files_are_one_line_errors(tmp_path, kind):
    fifo = _fifo(tmp_path / "pipe.yaml")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    if kind == "suite":
        problems = _without_blocking(lambda: find_problems(fifo))
        assert ["regular file" in p.message for p in problems] == [True]
        assert "empty folder" in find_problems(folder)[0].message  # a folder is a suite of its files
        return
    load = {
        "config": load_config,
        "rubric-path": read_rubric,
        "policy": lambda path: load_settings(GateSettings(), path),
    }[kind]
    for path, words in ((fifo, "FIFO"), (folder, "folder")):
        outcome = _without_blocking(lambda p=path: load(p))
        assert isinstance(outcome, EvalsError), outcome
        message = str(outcome)
        assert str(path) in message and "\n" not in message
        assert words in message or "not found" in message  # a rubric path must be a file: not found


def test_read_text_never_blocks_on_a_fifo(tmp_path):
    fifo = _fifo(tmp_path / "pipe")
    outcome = _without_blocking(lambda: read_text(fifo))
    assert isinstance(outcome, UserFileError) and "FIFO" in str(outcome)


def test_cli_config_that_is_a_folder_exits_2_with_one_line(tmp_path):
    (tmp_path / "conf").mkdir()
    result = CliRunner().invoke(main, ["run", "--suite", "suites", "--config", str(tmp_path / "conf")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "is a folder" in result.output


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("non_inferiority_margin: .inf\n", 1, "non_inferiority_margin"),
        ("alpha: 0.05\nfloors:\n  geo: {mean: .nan}\n", 3, "floors.geo.mean"),
    ],
)
def test_a_policy_cannot_pass_everything_with_infinity_or_nan(tmp_path, text, line, field):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path}:{line}: {field}: Input should be a finite number"):
        load_settings(GateSettings(), path)


@pytest.mark.parametrize(
    "rubric", ["../.env", "/etc/passwd", "judges/strict.yaml", "strict.yaml", "..", ".hidden", "a\\b"]
)
def test_an_items_rubric_is_a_name_not_a_path(tmp_path, rubric):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "q1", "area": "a", "question": "q?", "rubric": rubric}) + "\n")
    assert [(p.field, "not a path" in p.message) for p in find_problems(path)] == [("rubric", True)]
    path.write_text(json.dumps({"id": "q1", "area": "a", "question": "q?", "rubric": "safety-v2_b"}) + "\n")
    assert find_problems(path) == []


def test_a_large_file_sharing_a_block_per_item_may_expand_more(monkeypatch):
    monkeypatch.setattr(userfiles, "MAX_ALIAS_NODES", 1_000)
    shared = "d: &d {area: geo, tags: [a, b], reference: x, rubric: r}\n"
    items = "".join(f"  - {{<<: *d, id: q{i}, question: q{i}?}}\n" for i in range(200))
    data = parse_yaml(shared + "items:\n" + items, "s.yaml")  # aliases add ~2,600 values: 2x what is written
    assert len(data["items"]) == 200 and data["items"][199]["area"] == "geo"
    with pytest.raises(UserFileError, match="aliases expand"):
        parse_yaml(billion_laughs(levels=5), "x.yaml")  # 9**5 from a few lines: still refused


def test_a_suite_with_a_bomb_in_an_items_metadata_is_refused(tmp_path):
    # The shape of the original report: 547 bytes whose item looked valid and expanded to 9**9 strings
    # when the suite was hashed (more than 4 GB, never finishing).
    anchors = ['      a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"      a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    path = tmp_path / "s.yaml"
    path.write_text(
        "items:\n  - id: q1\n    area: a\n    question: q?\n    metadata:\n" + "\n".join(anchors) + "\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert [(p.line, "aliases expand" in p.message) for p in caught.value.problems] == [(11, True)]


def test_a_blank_id_does_not_hide_the_items_other_problems(tmp_path):
    path = tmp_path / "s.jsonl"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path.write_text(json.dumps({"id": " ", "area": "a", "messages": turns}) + "\n")
    messages = sorted(p.message for p in find_problems(path))
    assert len(messages) == 2 and "blank" in messages[0] and "must end with a user turn" in messages[1]


@pytest.mark.parametrize("name", ["\\e]0;pwned\\a", "safe\\u202egnp", "a\\tb"])
def test_a_suite_name_with_control_characters_is_a_problem(tmp_path, name):
    path = tmp_path / "s.yaml"
    path.write_text(f'suite: "{name}"\nitems:\n  - {{id: q1, area: a, question: q?}}\n')
    assert [(p.line, p.field, "control character" in p.message) for p in find_problems(path)] == [
        (1, "suite", True)
    ]
