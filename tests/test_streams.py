"""Reading files too large to hold whole: ``userfiles.read_chunks``/``read_lines`` and ``store.jsonstream``
give the same text, pieces and lines however the file is cut into chunks."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from evals import userfiles
from evals.store.jsonstream import ShapeError, line_in, members
from evals.userfiles import UserFileError, read_chunks, read_lines


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven bytes at a time: every multi-byte character and escape gets cut somewhere."""
    monkeypatch.setattr(userfiles, "CHUNK_BYTES", 7)


def test_chunks_and_lines_give_the_text_back_whatever_the_cuts(tmp_path: Path) -> None:
    text = "é\u2028line one\r\n\n\U0001f600 two\nthree without end"
    (tmp_path / "f.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert "".join(read_chunks(tmp_path / "f.txt")) == text
    assert list(read_lines(tmp_path / "f.txt")) == [
        (1, "é\u2028line one"), (2, ""), (3, "\U0001f600 two"), (4, "three without end")
    ]  # fmt: skip


def test_bytes_that_are_not_utf8_are_an_error_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes("a\nbé\ncccccccccccccccc\n".encode() + b"dd\xffd\n")
    with pytest.raises(UserFileError, match=r"f.txt:4: not valid UTF-8"):
        list(read_lines(tmp_path / "f.txt"))


def test_a_folder_or_a_fifo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserFileError, match="is a folder"):
        list(read_chunks(tmp_path))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserFileError, match="FIFO"):
        list(read_chunks(fifo))


ALPHABET = 'ab"\\[]{}:, \n\u00e9\u2028'


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice([_text(rng), rng.randint(-5, 5), 1.5, True, None])
    if roll < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def test_members_split_any_object_cut_anywhere_into_its_members_and_items() -> None:
    rng = random.Random(19)
    for _ in range(600):
        doc = {_text(rng) + str(i): _value(rng) for i in range(rng.randint(0, 4))}
        doc["items"] = [_value(rng) for _ in range(rng.randint(0, 4))]
        text = json.dumps(doc, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5)
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 12))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        pieces = list(members(chunks, "items"))
        got = {p.key: json.loads(p.text) for p in pieces if p.index is None}
        assert got == {k: v for k, v in doc.items() if k != "items" or not v}, text
        assert [json.loads(p.text) for p in pieces if p.index is not None] == doc["items"], text
        for piece in pieces:  # each piece starts on the line it says
            first = text.split("\n")[piece.value_line - 1]
            assert piece.text.split("\n")[0] in first, (piece, text)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[1]", 1, "expected a JSON object"),
        ('{\n"a"\n1}', 3, "expected ':' after the key 'a'"),
        ('{"a": 1,\n}', 2, "expected a quoted key"),
        ('{"a": 1}\n\nx', 3, "more text after"),
        ('{"a": "x}', 1, "cut short"),
        ('{"items": [1,\n]}', 2, "expected a value"),
        ('{"items": [1\n2]}', 2, "expected ',' or ']' after element 0 of items"),
        ('{"a\\q": 1}', 1, "not a valid JSON string"),
    ],
)
def test_text_that_is_not_one_object_says_where(text: str, line: int, words: str) -> None:
    with pytest.raises(ShapeError) as caught:
        list(members([text[i : i + 2] for i in range(0, len(text), 2)], "items"))
    assert caught.value.line == line and words in caught.value.message


def test_line_in_finds_a_nested_key_or_element() -> None:
    text = json.dumps(
        {"model": {"x": [1, {"y": "}]"}]}, "items": [{"id": "a"}, {"id": "b", "z": 1}]}, indent=1
    )
    lines = text.split("\n")
    assert '"y"' in lines[line_in(text, ["model", "x", 1, "y"])]
    assert '"z"' in lines[line_in(text, ["items", 1, "z"])]
    assert line_in(text, ["missing"]) == 0
