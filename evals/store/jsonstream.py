"""Reading one large JSON object a piece at a time: ``manifest.json`` holds a run's items, thousands of them.

``members`` splits the object's text, as it arrives in chunks, into its top-level members and, for the one
array member named (``items``), into that array's elements, each with the line it starts on; every piece is
then parsed on its own (with ``evals.userfiles.parse_json``'s limits), so memory holds one piece, never the
whole object. ``line_in`` finds the line of a field inside a piece, for ``file:line: field`` messages.

The splitter only finds where pieces begin and end (strings, brackets, commas, colons); a piece that is not
valid JSON is reported by whoever parses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

_WS = " \t\r\n"
_NOT_WS = re.compile(r"[^ \t\r\n]")
# Inside a container: whole strings and anything but brackets and quotes, skipped in one match (in C).
_SKIP = re.compile(r'(?:"(?:[^"\\]++|\\.)*+"|[^"\[\]{}])*+', re.S)
# The rest of a string, up to its closing quote (or the end of the chunk).
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+', re.S)
_SCALAR_END = re.compile(r"[,\]}\s]")


class ShapeError(ValueError):
    """The text is not one JSON object (``line``: where it went wrong)."""

    def __init__(self, line: int, message: str, field: str | None = None):
        super().__init__(message)
        self.line = line
        self.message = message
        self.field = field
        """The member concerned, when the problem is one member's."""


@dataclass(frozen=True)
class Piece:
    """One top-level member of the object, or one element of its streamed array."""

    key: str
    """The member's name (for an element: the array's)."""
    index: int | None
    """The element's 0-based position in the streamed array; None for a member."""
    text: str
    """The JSON text of the value (or element)."""
    line: int
    """1-based line of the member's key (of an element: where it starts)."""
    value_line: int
    """1-based line where ``text`` starts."""


class _Capture:
    """The text of one JSON value, fed chunk by chunk, until it ends."""

    def __init__(self, line: int):
        self.parts: list[str] = []
        self.line = line
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the chunk ended inside a string, right after a backslash
        self.kind = ""  # "container", "string" or "scalar", set by the first character

    def _string(self, chunk: str, at: int) -> int | None:
        """Read on in a string from ``at``; the position after its closing quote, or None at the chunk's end."""
        if self.escaped:
            if at >= len(chunk):
                return None
            self.escaped, at = False, at + 1
        at = _STRING_REST.match(chunk, at).end()  # type: ignore[union-attr]
        if at >= len(chunk):
            return None
        if chunk[at] == "\\":  # a backslash, last in the chunk: what it escapes comes next
            self.escaped = True
            return None
        self.in_string = False
        return at + 1

    def feed(self, chunk: str, at: int) -> int | None:
        """Take ``chunk`` from ``at``; the position just after the value when it ends there, else None."""
        start = at
        if not self.kind:
            first = chunk[at]
            self.kind = "container" if first in "[{" else "string" if first == '"' else "scalar"
            if self.kind == "string":
                self.in_string, at = True, at + 1
        if self.kind == "scalar":
            found = _SCALAR_END.search(chunk, at)
            end = found.start() if found else None
            self.parts.append(chunk[start:end])
            return end
        while True:
            if self.in_string:
                after = self._string(chunk, at)
                if after is None:
                    break
                at = after
                if self.kind == "string":
                    self.parts.append(chunk[start:at])
                    return at
            at = _SKIP.match(chunk, at).end()  # type: ignore[union-attr]
            if at >= len(chunk):
                break
            char = chunk[at]
            at += 1
            if char == '"':  # a string the chunk ends in
                self.in_string = True
            elif char in "[{":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 0:
                    self.parts.append(chunk[start:at])
                    return at
        self.parts.append(chunk[start:])
        return None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Lines:
    """Line numbers of positions in the chunk being read (positions asked in increasing order)."""

    def __init__(self) -> None:
        self.line, self.chunk, self.counted = 1, "", 0

    def start(self, chunk: str) -> None:
        self.line += self.chunk.count("\n", self.counted)
        self.chunk, self.counted = chunk, 0

    def at(self, position: int) -> int:
        self.line += self.chunk.count("\n", self.counted, position)
        self.counted = position
        return self.line


def members(chunks: Iterable[str], array: str) -> Iterator[Piece]:
    """The members of the JSON object whose text comes in ``chunks``, in order; the member named ``array``,
    when it is an array, comes as its elements (an empty one as a member, ``[]``). ``ShapeError`` when the
    text is not one object."""
    lines = _Lines()
    state, key, key_line, value_line, elements, array_line = "start", "", 0, 0, 0, 0
    capture: _Capture | None = None
    for chunk in chunks:
        lines.start(chunk)
        at = 0
        while at < len(chunk):
            if capture is not None:
                end = capture.feed(chunk, at)
                if end is None:
                    break
                at, done, capture = end, capture, None
                if state == "key":
                    key, state = _key_text(done.text, done.line), "colon"
                elif state == "element":
                    yield Piece(key, elements, done.text, done.line, done.line)
                    elements, state = elements + 1, "after_element"
                else:
                    yield Piece(key, None, done.text, key_line, done.line)
                    state = "after_value"
                continue
            if chunk[at] in _WS:
                found = _NOT_WS.search(chunk, at)
                if found is None:
                    break
                at = found.start()
            char = chunk[at]
            if state == "start":
                _expect(char, "{", lines.at(at), "expected a JSON object ({...})")
                state = "first_key"
            elif state in ("first_key", "next_key"):
                if char == "}" and state == "first_key":
                    state = "end"
                else:
                    key_line = lines.at(at)
                    _expect(char, '"', key_line, "expected a quoted key")
                    capture, state = _Capture(key_line), "key"
                    continue  # the capture reads this character
            elif state == "colon":
                _expect(char, ":", lines.at(at), f"expected ':' after the key {key!r}")
                state = "value"
            elif state == "value" and key == array and char == "[":
                if array_line:
                    raise ShapeError(key_line, f"given twice (first on line {array_line}); keep one", key)
                state, elements, value_line, array_line = "first_element", 0, lines.at(at), key_line
            elif state in ("value", "first_element", "next_element"):
                if char == "]" and state == "first_element":  # an empty array: one piece, the member
                    yield Piece(key, None, "[]", key_line, value_line)
                    state = "after_value"
                else:
                    line = lines.at(at)
                    if char in ",]}:":
                        raise ShapeError(line, f"expected a value, found {char!r}")
                    capture = _Capture(line)
                    state = "member" if state == "value" else "element"
                    continue
            elif state == "after_element":
                _expect(
                    char, ",]", lines.at(at), f"expected ',' or ']' after element {elements - 1} of {array}"
                )
                state = "next_element" if char == "," else "after_value"
            elif state == "after_value":
                _expect(char, ",}", lines.at(at), f"expected ',' or '}}' after the value of {key!r}")
                state = "next_key" if char == "," else "end"
            else:  # "end"
                raise ShapeError(lines.at(at), "more text after the object's closing '}'")
            at += 1
    if state != "end":
        raise ShapeError(lines.at(len(lines.chunk)), "the file ends before the object does; it is cut short")


def _expect(char: str, allowed: str, line: int, message: str) -> None:
    if char not in allowed:
        raise ShapeError(line, f"{message}, found {char!r}")


def _key_text(text: str, line: int) -> str:
    try:
        key = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShapeError(line, f"a key is not a valid JSON string: {exc.msg}") from None
    if not isinstance(key, str):  # pragma: no cover  (a quoted JSON text is a string)
        raise ShapeError(line, "a key is not a string")
    return key


# -- where a field is -----------------------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_SKIP_WS = re.compile(r"[ \t\r\n]*")


def line_in(text: str, loc: Sequence[str | int]) -> int:
    """How many lines below the start of ``text`` (valid JSON) the deepest part of ``loc`` found begins
    (0: on the first line): the key of a member, or the start of an element."""
    at = _SKIP_WS.match(text, 0).end()  # type: ignore[union-attr]
    found = 0
    for part in loc:
        if at >= len(text):
            break
        if text[at] == "{" and isinstance(part, str):
            where = _member_at(text, at, part)
        elif text[at] == "[" and isinstance(part, int):
            where = _element_at(text, at, part)
        else:
            break
        if where is None:
            break
        found, at = where
    return text.count("\n", 0, found)


def _member_at(text: str, at: int, name: str) -> tuple[int, int] | None:
    """(where the key ``name`` starts, where its value starts) in the object at ``at``."""
    at = _SKIP_WS.match(text, at + 1).end()  # type: ignore[union-attr]
    while at < len(text) and text[at] == '"':
        key_start = at
        key, at = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
        at = _SKIP_WS.match(text, at).end() + 1  # type: ignore[union-attr]  # past the ':'
        at = _SKIP_WS.match(text, at).end()  # type: ignore[union-attr]
        if key == name:
            return key_start, at
        at = _DECODER.raw_decode(text, at)[1]
        at = _SKIP_WS.match(text, at).end()  # type: ignore[union-attr]
        if at < len(text) and text[at] == ",":
            at = _SKIP_WS.match(text, at + 1).end()  # type: ignore[union-attr]
    return None


def _element_at(text: str, at: int, index: int) -> tuple[int, int] | None:
    """(where element ``index`` starts, twice) in the array at ``at``."""
    at = _SKIP_WS.match(text, at + 1).end()  # type: ignore[union-attr]
    for _ in range(index):
        if at >= len(text) or text[at] == "]":
            return None
        at = _DECODER.raw_decode(text, at)[1]
        at = _SKIP_WS.match(text, at).end() + 1  # type: ignore[union-attr]  # past the ','
        at = _SKIP_WS.match(text, at).end()  # type: ignore[union-attr]
    if at >= len(text) or text[at] == "]":
        return None
    return at, at
