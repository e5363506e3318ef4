"""Text as redaction's detection reads it, and the way back to the text as written.

An identifier can be written so that a pattern no longer sees it while a reader (or a model) still does:
``john&#64;example.com``, ``john%40example.com``, ``john@example.com`` with a zero-width space inside,
``ｊｏｈｎ＠example.com``, or a card number split over two lines. ``normalise`` undoes these for detection only:

- HTML character references are decoded (``&#64;``, ``&#x40;``, ``&commat;``, ``&amp;``: ``html.unescape``);
- percent-escapes are decoded (``%40``, ``%2e``, UTF-8 sequences), except those standing for whitespace or
  control characters (``%20`` in a URL stays, so the URL is still found whole);
- invisible characters are removed: Unicode format characters (zero-width space, joiners, word joiner,
  byte-order mark, soft hyphen, bidi marks, tags), variation selectors, Hangul fillers, control characters;
- every other character is put in NFKC form (fullwidth ``＠`` and digits, no-break spaces become spaces);
- a single line break between digit groups is joined (``4111 1111\\n1111 1111``, ``4111-1111-\\r\\n1111``;
  ``GB82 WEST\\n1234``): removed between digits and their separators, a space beside a letter.

These steps repeat until nothing changes (at most ``MAX_ROUNDS`` times), so ``&amp;#64;`` or ``%26%2364;``
are undone as well. Every step keeps a map from each character it outputs to the characters it came from:
``Normalised.span`` gives the span of the text as written behind a span of the normalised text, so a
placeholder replaces all of ``john&#64;example.com`` and nothing around it. Each step is one regular
expression scan plus work on what it found: linear in the text, and nothing at all for plain ASCII text
without ``&``, ``%``, line breaks or control characters.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_ROUNDS = 4
"""Layers of encoding undone (``&amp;#64;`` is two)."""

_ASCII_WORK = re.compile(r"[&%\n\r\x0b\x0c\x00-\x08\x0e-\x1f\x7f]")
"""In ASCII text, the only characters any step acts on."""
_ESCAPE = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{0,31};?)|(?:%[0-9A-Fa-f]{2})+")
_NOT_PLAIN = re.compile(r"[^\t\n\r\x0b\x0c\x20-\x7e]+")
_BREAK = re.compile(r"[ \t]*(?:\r\n|[\n\r\x0b\x0c\x85\u2028\u2029])[ \t]*")
_BREAK_CHARS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_KEPT_CONTROLS = frozenset("\t\n\r\x0b\x0c\x85")
_INVISIBLE_EXTRA = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
_UTF8_LENGTH = [1] * 0x80 + [0] * 0x42 + [2] * 0x1E + [3] * 0x10 + [4] * 0x05 + [0] * 0x0B
"""Bytes in a UTF-8 sequence by its first byte (0: cannot start one)."""


def invisible(char: str) -> bool:
    """Whether ``char`` is removed before detection: a format or control character, or one that renders as
    nothing (variation selectors, fillers). Tabs and line breaks are kept."""
    category = unicodedata.category(char)
    if category == "Cf":
        return True
    if category == "Cc":
        return char not in _KEPT_CONTROLS
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_EXTRA)


@dataclass(frozen=True)
class _Step:
    """What one step replaced: segment k of its output, ``[out_starts[k], out_ends[k])``, came from
    ``[in_starts[k], in_ends[k])`` of its input; everything between segments was copied as it was."""

    out_starts: list[int]
    out_ends: list[int]
    in_starts: list[int]
    in_ends: list[int]

    def source(self, index: int) -> tuple[int, int]:
        """The input span that output character ``index`` came from."""
        k = bisect_right(self.out_starts, index) - 1
        if k < 0:
            return index, index + 1
        if index < self.out_ends[k]:
            return self.in_starts[k], self.in_ends[k]
        shift = self.in_ends[k] - self.out_ends[k]
        return index + shift, index + shift + 1


def _apply(text: str, edits: Iterable[tuple[int, int, str]]) -> tuple[str, _Step | None]:
    """``text`` with each ``(start, end, replacement)`` made (in order, not overlapping), and its step."""
    parts: list[str] = []
    step = _Step([], [], [], [])
    last = out = 0
    for start, end, replacement in edits:
        parts.append(text[last:start])
        out += start - last
        step.out_starts.append(out)
        out += len(replacement)
        step.out_ends.append(out)
        step.in_starts.append(start)
        step.in_ends.append(end)
        parts.append(replacement)
        last = end
    if not step.out_starts:
        return text, None
    parts.append(text[last:])
    return "".join(parts), step


def _decoded(text: str) -> Iterable[tuple[int, int, str]]:
    """HTML character references and percent-escapes, decoded."""
    for match in _ESCAPE.finditer(text):
        written = match.group()
        if written[0] == "&":
            value = html.unescape(written)
            if value != written:
                yield match.start(), match.end(), value
        else:
            yield from _percent(match.start(), bytes.fromhex(written.replace("%", "")))


def _percent(at: int, data: bytes) -> Iterable[tuple[int, int, str]]:
    """A run of percent-escapes starting at ``at``, one edit per UTF-8 character it spells; escapes that are
    not UTF-8, or stand for whitespace or a control character, stay as written."""
    index = 0
    while index < len(data):
        length = _UTF8_LENGTH[data[index]]
        try:
            char = data[index : index + length].decode("utf-8") if length else ""
        except UnicodeDecodeError:
            char = ""
        if len(char) == 1 and not (char.isspace() or unicodedata.category(char) == "Cc"):
            yield at + 3 * index, at + 3 * (index + length), char
            index += length
        else:
            index += 1


def _characters(text: str) -> Iterable[tuple[int, int, str]]:
    """Invisible characters removed, the rest in NFKC form (a character with its combining marks at once)."""
    for match in _NOT_PLAIN.finditer(text):
        start, end = match.span()
        if unicodedata.combining(text[start]) and start > 0:
            start -= 1  # the base character a combining mark composes with
        chunk = text[start:end]
        if unicodedata.is_normalized("NFKC", chunk) and not any(invisible(c) for c in chunk):
            continue
        cluster = start
        for index in range(start + 1, end + 1):
            if index < end and unicodedata.combining(text[index]):
                continue
            written = text[cluster:index]
            value = "".join(c for c in unicodedata.normalize("NFKC", written) if not invisible(c))
            if value != written:
                yield cluster, index, value
            cluster = index


def _controls(text: str) -> Iterable[tuple[int, int, str]]:
    """Control characters removed (ASCII text: nothing else there can change)."""
    for match in re.finditer(r"[\x00-\x08\x0e-\x1f\x7f]+", text):
        yield match.start(), match.end(), ""


def _digit_side(text: str, index: int, step: int) -> bool:
    """Whether the character at ``index`` is a digit, or a separator beside one, looking away from the
    break (``step`` -1: left of it, +1: right of it)."""
    if not 0 <= index < len(text):
        return False
    char = text[index]
    if char.isdecimal():
        return True
    separators = "-.)" if step < 0 else "-(+"
    beyond = index + step
    return char in separators and 0 <= beyond < len(text) and text[beyond].isdecimal()


def _joined(text: str) -> Iterable[tuple[int, int, str]]:
    """Single line breaks beside a digit group joined: removed between two digit groups, a space otherwise."""
    for match in _BREAK.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text):
            continue
        left, right = text[start - 1], text[end]
        if left.isspace() or right.isspace() or left in _BREAK_CHARS or right in _BREAK_CHARS:
            continue  # a blank line: a paragraph, not a split number
        digit_left, digit_right = _digit_side(text, start - 1, -1), _digit_side(text, end, 1)
        if digit_left and digit_right:
            yield start, end, ""
        elif digit_left or digit_right:
            yield start, end, " "


@dataclass(frozen=True)
class Normalised:
    """A text as written and as detection reads it, with the map between them."""

    written: str
    text: str
    """The normalised text detection runs on."""
    steps: tuple[_Step, ...] = ()

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the text as written that ``text[start:end]`` (not empty) came from."""
        first, last = start, end - 1
        begin, stop = first, last + 1
        for step in reversed(self.steps):
            begin = step.source(first)[0]
            stop = step.source(last)[1]
            first, last = begin, stop - 1
        return begin, stop


_STEPS: tuple[Callable[[str], Iterable[tuple[int, int, str]]], ...] = (_decoded, _characters, _joined)


def normalise(text: str) -> Normalised:
    """``text`` as detection reads it (see the module's docstring), with the map back to it."""
    if text.isascii() and not _ASCII_WORK.search(text):
        return Normalised(text, text)
    steps: list[_Step] = []
    current = text
    for _ in range(MAX_ROUNDS):
        changed = False
        for edits in _STEPS:
            if edits is _characters and current.isascii():
                edits = _controls
            current, step = _apply(current, edits(current))
            if step is not None:
                steps.append(step)
                changed = True
        if not changed:
            break
    return Normalised(text, current, tuple(steps))
