"""Text as redaction's detection reads it, and the way back to the text as written.

An identifier can be written so that a pattern no longer sees it while a reader (or a model) still does:
``john&#64;example.com``, ``john%40example.com``, ``john@example.com`` with a zero-width space inside,
``ｊｏｈｎ＠example.com``, or a card number split over two lines. ``normalise`` undoes these for detection only:

- HTML character references are decoded (``&#64;``, ``&#x40;``, ``&commat;``, ``&amp;``: ``html.unescape``;
  also ``&COMMAT;``, and ``&#x40example`` as ``@example``);
- percent-escapes are decoded (``%40``, ``%2e``, UTF-8 sequences, ``%u0040``), except those standing for
  control characters, or for whitespace anywhere but between two digits (``%20`` in a URL stays, so the
  URL is still found whole); backslash escapes too (``\\u0040``, ``\\u{40}``, ``\\x40``);
- invisible characters are removed: Unicode format characters (zero-width space, joiners, word joiner,
  byte-order mark, soft hyphen, bidi marks, tags), variation selectors, Hangul fillers, control characters;
- every other character is put in NFKC form (fullwidth ``＠`` and digits, no-break spaces become spaces),
  dashes become ``-`` (en dash, non-breaking hyphen, minus sign) and an ideographic full stop ``.``;
- a single line break between digit groups is joined (``4111 1111\\n1111 1111``, ``4111-1111-\\r\\n1111``;
  ``GB82 WEST\\n1234``): removed between digits and their separators, a space beside a letter; a line
  break inside an email address (beside its ``@``, or at a ``.`` of it) is removed too;
- digit groups are spaced as a card is written: a tab or several spaces between digits become one space,
  and three or more groups joined by one ``.``, ``/`` or ``_`` (``4111.1111.1111.1111``; not an IP
  address) get spaces;
- an ``@`` written ``[at]``, ``(at)`` or with spaces on both sides, and a ``.`` written ``[dot]``, become
  the sign (bare words "at" and "dot" are left: prose is full of them).

These steps repeat until nothing changes (at most ``MAX_ROUNDS`` times), so ``&amp;#64;`` or ``%26%2364;``
are undone as well. Every step keeps a map from each character it outputs to the characters it came from:
``Normalised.span`` gives the span of the text as written behind a span of the normalised text, so a
placeholder replaces all of ``john&#64;example.com`` and nothing around it. Each step is one regular
expression scan plus work on what it found: linear in the text, and nothing at all for plain ASCII text
without anything a step acts on (``_ASCII_WORK``: ``&``, ``%``, ``\\``, tabs, line breaks, control
characters, a spaced ``@``, ``[at]``, a digit followed by two spaces, three digits joined to three more by
``.``, ``/`` or ``_``: a decimal like ``3.5`` is not work).
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_ROUNDS = 4
"""Layers of encoding undone (``&amp;#64;`` is two)."""

_ASCII_WORK = re.compile(
    r"[&%\\\t\n\r\x0b\x0c\x00-\x08\x0e-\x1f\x7f]|\d {2}|\d{3}[./_]\d{3}| @|@ |[\[({<] *(?:at|dot) *[\])}>]",
    re.I,
)
"""In ASCII text, what any step acts on (anything else is left as it is, unmapped)."""
_ESCAPE = re.compile(
    r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{0,31};?)|(?:%[0-9A-Fa-f]{2})+"
    r"|\\u[0-9A-Fa-f]{4}|\\u\{[0-9A-Fa-f]{1,6}\}|\\x[0-9A-Fa-f]{2}|%u[0-9A-Fa-f]{4}"
)
_FOLDED = {"\u2212": "-", "\u2043": "-", "\u02d7": "-", "\u2796": "-", "\u3002": "."}
"""Characters NFKC keeps that read as a hyphen or a full stop (dashes of category Pd fold too)."""
_GAP = re.compile(r"[ \t]{2,}|\t")
_GROUPS = re.compile(r"(?<!\d)(?<!\d[./_])\d{3,6}([./_])\d{3,6}(?:\1\d{3,6})+(?!\d)(?![./_]\d)")
"""Digit groups of 3 to 6 digits, three or more, all joined by the same ``.``, ``/`` or ``_`` (one of
them 4 digits or more: four groups of 3 are an IP address)."""
_AT = re.compile(r"(?<=[\w.+-])([ \t\r\n]{0,4})(@|[\[({<][ \t]*at[ \t]*[\])}>])([ \t\r\n]{0,4})(?=\w)", re.I)
_GROUP_START = re.compile(r"\d{3}[./_]\d{3}")
_SPELLED = re.compile(r"[\[({<][ \t]*(?:at|dot)[ \t]*[\])}>]", re.I)
_DOT = re.compile(r"(?<=\w)[ \t]*[\[({<][ \t]*dot[ \t]*[\])}>][ \t]*(?=\w)", re.I)
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
    """HTML character references, percent-escapes and backslash escapes, decoded."""
    for match in _ESCAPE.finditer(text):
        written = match.group()
        if written[0] == "&":
            edit = _reference(written)
            if edit is not None:
                yield match.start(), match.start() + edit[0], edit[1]
        elif written[:2] in ("%u", "%U") or written[0] == "\\":
            char = chr(min(int(written.strip("\\%uUx{}"), 16), 0x10FFFF))
            if not (char.isspace() or unicodedata.category(char) in ("Cc", "Cs")):
                yield match.start(), match.end(), char
        else:
            data = bytes.fromhex(written.replace("%", ""))
            # whitespace escaped between two digits (``4111%201111``) is read as the whitespace it is
            between_digits = _decimal(text, match.start() - 1) and _decimal(text, match.end())
            yield from _percent(match.start(), data, keep_spaces=between_digits)


def _decimal(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isdecimal()


def _reference(written: str) -> tuple[int, str] | None:
    """An HTML character reference as a reader takes it: (characters of ``written`` it spans, value), or
    None. Beyond ``html.unescape``: a named one in other capitals or without its ``;`` (``&COMMAT;``,
    ``&commat``), and a numeric one without ``;`` ends where its value is still printable ASCII
    (``&#x40example`` is ``@example``, not U+040E then ``xample``)."""
    value = html.unescape(written)
    if written[1] == "#":
        if written.endswith(";") or (value.isascii() and value.isprintable()):
            return (len(written), value) if value != written else None
        for end in range(min(len(written) - 1, 12), 2, -1):  # the longest escape of a character is 12
            shorter = html.unescape(written[:end])
            if shorter != written[:end] and shorter.isascii() and shorter.isprintable():
                return end, shorter
        return (len(written), value) if value != written else None
    if value != written:
        return len(written), value
    name = written[1:].rstrip(";")
    for candidate in (name, name.lower()):
        if f"{candidate};" in html.entities.html5:
            return len(written), html.entities.html5[f"{candidate};"]
    return None


def _percent(at: int, data: bytes, keep_spaces: bool = False) -> Iterable[tuple[int, int, str]]:
    """A run of percent-escapes starting at ``at``, one edit per UTF-8 character it spells; escapes that are
    not UTF-8, or stand for a control character or (unless ``keep_spaces``) whitespace, stay as written."""
    index = 0
    while index < len(data):
        length = _UTF8_LENGTH[data[index]]
        try:
            char = data[index : index + length].decode("utf-8") if length else ""
        except UnicodeDecodeError:
            char = ""
        space = char.isspace() and (keep_spaces and char in " \t\n\r")
        if len(char) == 1 and (space or not (char.isspace() or unicodedata.category(char) == "Cc")):
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
        if unicodedata.is_normalized("NFKC", chunk) and not any(invisible(c) or _fold(c) != c for c in chunk):
            continue
        cluster = start
        for index in range(start + 1, end + 1):
            if index < end and unicodedata.combining(text[index]):
                continue
            written = text[cluster:index]
            value = "".join(_fold(c) for c in unicodedata.normalize("NFKC", written) if not invisible(c))
            if value != written:
                yield cluster, index, value
            cluster = index


def _fold(char: str) -> str:
    """A dash as ``-``, an ideographic full stop as ``.``; any other character as it is."""
    if char in _FOLDED:
        return _FOLDED[char]
    return "-" if char != "-" and unicodedata.category(char) == "Pd" else char


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
        if (digit_left and digit_right) or _inside_address(text, start, end):
            yield start, end, ""
        elif digit_left or digit_right:
            yield start, end, " "


def _gaps(text: str) -> Iterable[tuple[int, int, str]]:
    """A tab or several spaces between two digits, one space (``4111\\t1111``)."""
    for match in _GAP.finditer(text):
        if _decimal(text, match.start() - 1) and _decimal(text, match.end()):
            yield match.start(), match.end(), " "


def _groups(text: str) -> Iterable[tuple[int, int, str]]:
    """Three or more digit groups joined by the same ``.``, ``/`` or ``_`` (``4111.1111.1111.1111``),
    spaced as a card or phone number is written."""
    if not _GROUP_START.search(text):
        return  # the common case, found by a simpler scan
    for match in _GROUPS.finditer(text):
        separator = match.group(1)
        if max(map(len, match.group().split(separator))) < 4:
            continue  # an IP address (192.168.100.200), not a number written in groups
        for index in range(match.start(), match.end()):
            if text[index] == separator:
                yield index, index + 1, " "


def _at_signs(text: str) -> Iterable[tuple[int, int, str]]:
    """An ``@`` written ``[at]``, ``(at)``, with spaces on both sides or beside a line break, and a ``.``
    written ``[dot]``, read as the characters they stand for (``jane.doe [at] example [dot] com``)."""
    edits: list[tuple[int, int, str]] = []
    if "@" not in text and not _SPELLED.search(text):
        return edits  # the common case, found by simpler scans
    for match in _AT.finditer(text):
        before, sign, after = match.groups()
        spaced = bool(before and after) or "\n" in before + after or "\r" in before + after
        if sign != "@" or spaced:
            edits.append((match.start(), match.end(), "@"))
    edits += [(m.start(), m.end(), ".") for m in _DOT.finditer(text)]
    return sorted(edits)


def _inside_address(text: str, start: int, end: int) -> bool:
    """Whether the line break ``text[start:end]`` splits an email address at a ``.``, ``-``, ``_`` or ``+``
    (``jane.doe@example.\\ncom``, ``jane.\\ndoe@example.com``): the words on both sides, read together,
    hold one ``@``."""
    left, right = text[start - 1], text[end]
    if not ((left in "._-+" and right.isalnum()) or (right in ".-" and left.isalnum())):
        return False
    if "@" not in text[max(0, start - 128) : end + 128]:
        return False  # the end of a sentence, most often
    before = _WORD_BEFORE.search(text, max(0, start - 128), start)
    after = _WORD_AFTER.match(text, end, end + 128)
    word = (before.group() if before else "") + (after.group() if after else "")
    return word.count("@") == 1 and not word.startswith("@") and not word.endswith("@")


_WORD_BEFORE = re.compile(r"[^\s<>()\[\],;:\"']*$")
_WORD_AFTER = re.compile(r"[^\s<>()\[\],;:\"']*")


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


_STEPS: tuple[Callable[[str], Iterable[tuple[int, int, str]]], ...] = (
    _decoded,
    _characters,
    _joined,
    _gaps,
    _groups,
    _at_signs,
)


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
