"""Suites: every format loads to the same items, and every problem is reported at its file, line and field."""

from __future__ import annotations

import json
import operator
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evals.defaults import DEMO_SUITE as DEMO
from evals.errors import Problem, SuiteError
from evals.records import Item
from evals.suites import Suite, find_problems, load_suite, suites_in

DATA = Path(__file__).parent / "data" / "suites"


def data(name: str) -> str:
    return str(DATA / name)


def line_of(path: str | Path, text: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line of a fixture containing ``text``: expected lines are not hard-coded."""
    hits = [n for n, line in enumerate(Path(path).read_text().splitlines(), 1) if text in line]
    return hits[occurrence - 1]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def table_rows(items: tuple[Item, ...]) -> list[dict]:
    """Items as table rows, an empty mapping written as a missing cell (as a user's table would have it)."""
    return [{k: (None if v == {} else v) for k, v in item.model_dump(mode="json").items()} for item in items]


# --- loading -------------------------------------------------------------------------------------------


def test_yaml_jsonl_and_csv_load_to_the_same_items():
    suites = [load_suite(data(name)) for name in ("good.yaml", "good.jsonl", "good.csv")]
    assert suites[0].items == suites[1].items == suites[2].items
    assert len({suite.hash for suite in suites}) == 1
    items = {item.id: item for item in suites[0].items}
    assert list(items) == ["geo-01", "geo-02", "7", "conv-01"]  # file order
    assert items["7"].reference == "42"  # numbers where text is expected are their digits
    assert items["geo-02"].metadata == {"source": "atlas", "page": 12}
    assert [m.role for m in items["conv-01"].messages or ()] == ["system", "user"]
    assert items["conv-01"].tags == ("hard", "ocean")  # the CSV cell is "hard; ocean"


def test_parquet_and_a_saved_dataset_load_to_the_same_items(tmp_path):
    import datasets
    import pandas as pd

    expected = load_suite(data("good.jsonl")).items
    pd.DataFrame(table_rows(expected)).to_parquet(tmp_path / "good.parquet")
    datasets.disable_progress_bars()
    datasets.Dataset.from_list(table_rows(expected)).save_to_disk(str(tmp_path / "saved"))
    assert load_suite(tmp_path / "good.parquet").items == expected
    saved = load_suite(tmp_path / "saved")
    assert saved.items == expected
    assert saved.name == "saved"


def test_a_saved_dataset_dict_uses_its_test_split(tmp_path):
    import datasets

    datasets.disable_progress_bars()
    rows = table_rows(load_suite(data("good.jsonl")).items)
    splits = {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:2])}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dd"))
    assert [item.id for item in load_suite(tmp_path / "dd").items] == ["geo-01", "geo-02"]


def test_parquet_ids_and_text_tags_like_csv(tmp_path):
    import pandas as pd

    rows = {"id": [7, 8], "area": ["math", "math"], "question": ["6 × 7?", "2 + 2?"], "tags": ["a;b", None]}
    pd.DataFrame(rows).to_parquet(tmp_path / "ints.parquet")
    suite = load_suite(tmp_path / "ints.parquet")
    assert [(item.id, item.tags) for item in suite.items] == [("7", ("a", "b")), ("8", ())]
    assert suite.name == "ints"


def test_a_jsonl_line_with_exactly_id_area_question_reference_loads_as_it_is():
    suite = load_suite(data("four_fields.jsonl"))
    assert suite.items == (
        Item(
            id="q1",
            area="geography",
            question="What is the capital of Japan?",
            reference="Tokyo",
            sensitivity="internal",  # the default level, resolved at load time
        ),
    )
    assert suite.name == "four_fields"


def test_yaml_defaults_apply_to_items_that_do_not_set_the_field():
    items = {item.id: item for item in load_suite(data("good.yaml")).items}
    assert (items["geo-01"].area, items["geo-01"].tags) == ("geography", ("easy",))
    assert (items["geo-02"].area, items["geo-02"].tags) == ("geography", ("easy",))
    assert (items["7"].area, items["7"].tags) == ("arithmetic", ())  # `tags: []` is set, so no default
    assert load_suite(data("good.yaml")).name == "good"  # the `suite:` key


def test_yaml_text_fields_keep_the_text_as_written(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "items:\n"
        "  - {id: 1, area: x, question: Version, reference: 3.10}\n"
        "  - {id: 2, area: x, question: Is the sky green, reference: no}\n"
    )
    assert [item.reference for item in load_suite(tmp_path / "t.yaml").items] == ["3.10", "no"]


def test_a_folder_is_one_suite_of_its_files_sorted_by_name():
    suite = load_suite(data("folder"))
    assert [item.id for item in suite.items] == [
        "geo-01",
        "geo-02",
        "math-01",
        "sci-01",
    ]  # README, .txt ignored
    assert suite.name == "mixed"  # declared by a-geography.yaml
    assert suite.path == data("folder")


def test_a_folder_without_a_suite_key_is_named_after_the_folder(tmp_path):
    folder = tmp_path / "billing"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": "b1", "area": "refunds", "question": "Can I get a refund?"}\n')
    assert load_suite(folder).name == "billing"


def test_the_demo_suite_is_valid_and_broad():
    suite = load_suite(DEMO)
    areas = {item.area for item in suite.items}
    assert suite.name == "demo"
    assert len(suite.items) >= 48
    assert len(areas) >= 6
    assert all(item.reference and item.reference.strip() for item in suite.items)
    assert all(sum(item.area == area for item in suite.items) >= 6 for area in areas)
    assert find_problems(DEMO) == []


def test_the_demo_arithmetic_references_are_right():
    ops = {"+": operator.add, "-": operator.sub, "×": operator.mul, "÷": operator.truediv}
    checked = 0
    for item in load_suite(DEMO).items:
        match = re.match(r"What is (\d+) ([-+×÷]) (\d+)\?", item.question or "")
        if item.area == "arithmetic" and match:
            a, op, b = match.groups()
            assert float(item.reference or "") == ops[op](int(a), int(b)), item.id
            checked += 1
    assert checked >= 6


def test_the_hash_is_stable_ignores_order_and_changes_with_an_item(tmp_path):
    lines = (DATA / "good.jsonl").read_text().splitlines()
    (tmp_path / "reordered.jsonl").write_text("\n".join(reversed(lines)))
    first = load_suite(data("good.jsonl"))
    assert load_suite(data("good.jsonl")).hash == first.hash
    assert load_suite(tmp_path / "reordered.jsonl").hash == first.hash
    (tmp_path / "edited.jsonl").write_text("\n".join(lines).replace('"Lima"', '"Cusco"'))
    assert load_suite(tmp_path / "edited.jsonl").hash != first.hash


def test_head_is_a_smaller_suite_with_its_own_hash():
    suite = load_suite(data("good.jsonl"))
    head = suite.head(2)
    assert isinstance(head, Suite)
    assert head.items == suite.items[:2]
    assert head.hash != suite.hash and (head.name, head.path) == (suite.name, suite.path)


# --- problems: file, line, field -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "marker", "field", "message"),
    [
        ("syntax.yaml", "Translate:", None, "not valid YAML: mapping values are not allowed"),
        ("syntax.jsonl", '"b"', None, "invalid JSON: Expecting ',' delimiter"),
        ("missing_question.yaml", "- id: b", "items[1].question", "missing 'question'"),
        ("empty_question.jsonl", '"   "', "question", "'question' is empty"),
        ("missing_area.csv", "Where is the area?", "area", "missing required field 'area'"),
        ("missing_id.yaml", "- area: x", "items[1].id", "missing required field 'id'"),
        ("wrong_type.yaml", "tags: 5", "items[0].tags", "expected a list of strings"),
        ("bad_default.yaml", "tags: 5", "defaults.tags", "expected a list of strings"),
        ("unsafe.yaml", "question: !!python", None, "could not determine a constructor for the tag"),
    ],
)
def test_each_problem_is_reported_at_its_line_and_field(name, marker, field, message):
    problem = only(find_problems(data(name)))
    assert (problem.path, problem.line, problem.field) == (data(name), line_of(data(name), marker), field)
    assert message in problem.message


def test_an_unknown_field_points_at_its_key_with_a_did_you_mean():
    problem = only(find_problems(data("unknown_field.yaml")))
    line = line_of(data("unknown_field.yaml"), "refrence:")
    assert str(problem) == (
        f"{data('unknown_field.yaml')}:{line}: items[2].refrence: unknown field 'refrence' (did you mean 'reference'?)"
    )


def test_an_unknown_top_level_key_has_a_did_you_mean():
    path = data("unknown_top_level.yaml")
    problems = find_problems(path)
    assert [(p.line, p.field) for p in problems] == [(None, "items"), (line_of(path, "itmes:"), "itmes")]
    assert problems[0].message == "missing 'items'"
    assert problems[1].message == "unknown top-level key 'itmes' (did you mean 'items'?)"


def test_a_key_given_twice_in_an_item_is_a_problem(tmp_path):
    (tmp_path / "twice.yaml").write_text(
        "items:\n  - id: a\n    area: x\n    question: Q\n    reference: one\n    reference: two\n"
    )
    problem = only(find_problems(tmp_path / "twice.yaml"))
    assert (problem.line, problem.field) == (6, "items[0].reference")
    assert problem.message == "duplicate key (first on line 5)"


def test_a_control_character_in_yaml_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "ctl.yaml").write_text("items:\n  - id: é\n    area: x\n    question: bell \x07\n")
    problem = only(find_problems(tmp_path / "ctl.yaml"))
    assert (problem.line, problem.field) == (4, None)
    assert "U+0007" in problem.message


def test_a_duplicate_id_says_where_the_first_one_is():
    problem = only(find_problems(data("duplicate_id.yaml")))
    assert (problem.line, problem.field) == (
        line_of(data("duplicate_id.yaml"), "id: geo-01", 2),
        "items[2].id",
    )
    assert f"duplicate id 'geo-01' (first on line {line_of(data('duplicate_id.yaml'), 'id: geo-01')})" in (
        problem.message
    )


def test_ids_must_be_unique_across_the_files_of_a_folder():
    problem = only(find_problems(data("folder_duplicate")))
    two, one = data("folder_duplicate/two.jsonl"), data("folder_duplicate/one.yaml")
    assert (problem.path, problem.line, problem.field) == (two, line_of(two, '"geo-02"'), "id")
    assert f"first on {one}:{line_of(one, 'id: geo-02')}" in problem.message


def test_several_problems_in_one_file_are_all_reported():
    path = data("many_errors.yaml")
    found = {(p.line, p.field) for p in find_problems(path)}
    assert found == {
        (line_of(path, "- id: m-02"), "items[1].question"),  # no question (only a misspelt key)
        (line_of(path, "questoin:"), "items[1].questoin"),
        (line_of(path, "- id: m-01", 2), "items[2].id"),  # duplicate id
        (line_of(path, "- id: m-01", 2), "items[2].area"),  # missing area
        (line_of(path, "tags: 5"), "items[3].tags"),
        (line_of(path, "role: robot"), "items[4].messages[0].role"),
    }
    jsonl = data("many_errors.jsonl")
    assert [(p.line, p.field) for p in find_problems(jsonl)] == [(2, None), (3, "id"), (4, "refrence")]


def test_load_suite_raises_suite_error_listing_every_problem():
    with pytest.raises(SuiteError) as raised:
        load_suite(data("many_errors.yaml"))
    assert raised.value.problems == find_problems(data("many_errors.yaml"))
    assert len(raised.value.problems) == 6
    for problem in raised.value.problems:
        assert str(problem) in str(raised.value)


def test_non_utf8_bytes_are_reported_with_line_and_byte_offset(tmp_path):
    good = b'{"id": "a", "area": "x", "question": "caf\xc3\xa9?"}\n'
    bad = b'{"id": "b", "area": "x", "question": "caf\xe9?"}\n'  # Latin-1
    (tmp_path / "latin1.jsonl").write_bytes(good + good.replace(b'"a"', b'"c"') + bad)
    problem = only(find_problems(tmp_path / "latin1.jsonl"))
    assert (problem.line, problem.field) == (3, None)
    offset = 2 * len(good) + bad.index(b"\xe9")
    assert f"byte 0xe9 at byte offset {offset}" in problem.message
    (tmp_path / "latin1.yaml").write_bytes(b"items:\n  - id: a\n    area: x\n    question: caf\xe9?\n")
    assert only(find_problems(tmp_path / "latin1.yaml")).line == 4


def test_csv_problems_name_the_column_and_the_line_where_the_row_starts(tmp_path):
    (tmp_path / "t.csv").write_text(
        'id,area,question,refrence,metadata\na,x,"two\nlines",r,"{bad json"\nb,x,fine,r,\n'
    )
    problems = find_problems(tmp_path / "t.csv")
    assert [(p.line, p.field) for p in problems] == [(1, "refrence"), (2, "metadata")]
    assert "did you mean 'reference'?" in problems[0].message
    assert "invalid JSON" in problems[1].message


def test_parquet_problems_name_the_row(tmp_path):
    import pandas as pd

    rows = {"id": ["a", "b"], "area": ["x", None], "question": ["Fine?", "No area?"]}
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    problem = only(find_problems(tmp_path / "t.parquet"))
    assert (problem.line, problem.field) == (2, "area")
    assert problem.message.startswith("row 2: missing required field 'area'")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.yaml", "empty suite"),
        ("empty.jsonl", "empty suite"),
        ("suite.txt", "unsupported file type '.txt'"),
        ("no-such-suite.yaml", "no such file or folder"),
    ],
)
def test_file_level_problems(name, message):
    problem = only(find_problems(data(name)))
    assert (problem.path, problem.line, problem.field) == (data(name), None, None)
    assert message in problem.message


def test_a_yaml_suite_with_an_empty_item_list_is_a_problem():
    problem = only(find_problems(data("empty_items.yaml")))
    assert (problem.line, problem.field) == (2, "items")


def test_an_empty_folder_is_a_problem(tmp_path):
    (tmp_path / "README.md").write_text("not a suite")
    problem = only(find_problems(tmp_path))
    assert (problem.path, problem.line) == (str(tmp_path), None)
    assert "empty folder" in problem.message


def test_a_missing_path_raises_suite_error_not_another_exception():
    with pytest.raises(SuiteError, match="no such file or folder"):
        load_suite("suites/does-not-exist")


def test_a_malformed_hub_reference_is_a_suite_error():
    with pytest.raises(SuiteError, match="expected hf:NAME"):
        load_suite("hf:")


def test_a_hub_dataset_offline_is_a_suite_error(tmp_path):
    # A fresh interpreter: the Hub client reads HF_HUB_OFFLINE when it is imported.
    code = (
        "from evals.errors import SuiteError\n"
        "from evals.suites import load_suite\n"
        "try:\n    load_suite('hf:openai/gsm8k/main')\n"
        "except SuiteError as e:\n    print('SuiteError:', e)\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(DATA.parents[2]),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "SuiteError: 1 problem in suite" in done.stdout
    assert "hf:openai/gsm8k/main: cannot load Hugging Face dataset 'openai/gsm8k'" in done.stdout


def test_find_problems_of_a_valid_suite_is_empty():
    assert find_problems(data("good.yaml")) == []


def test_a_folder_of_suites_takes_suite_files_beside_its_suite_folders(tmp_path):
    suites = tmp_path / "suites"
    suites.mkdir()
    line = json.dumps({"id": "a1", "area": "a", "question": "q?", "reference": "r"}) + "\n"
    (suites / "example").mkdir()
    (suites / "example" / "geo.jsonl").write_text(line)
    (suites / "billing.jsonl").write_text(line)
    (suites / "billing.jsonl.rejected.jsonl").write_text(line)  # what suite review rejected: no suite
    (suites / "README.md").write_text("notes")
    assert suites_in(suites) == [str(suites / "billing.jsonl"), str(suites / "example")]
    # Files and a folder that holds no suite file (documents, say): one suite, its files its areas.
    (suites / "example" / "geo.jsonl").unlink()
    assert suites_in(suites) == [str(suites)]
    # Suite folders only: each one.
    (suites / "billing.jsonl").unlink()
    (suites / "billing.jsonl.rejected.jsonl").unlink()
    (suites / "example" / "geo.jsonl").write_text(line)
    assert suites_in(suites) == [str(suites / "example")]
