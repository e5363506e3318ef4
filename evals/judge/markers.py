"""Where text holds something that reads as one of the judge prompt's markers, look-alikes included.

A model under test can try to close its ``<answer>`` block, or open a ``<score>`` of its own, with text a
plain search for ``</answer`` misses but the judge still reads as the marker: a fullwidth ``＜``, another
angle bracket (``‹ 〈 ⟨ ❮``), a fraction slash, fullwidth or mathematical letters, Cyrillic look-alike
letters, capitals, or invisible characters (zero-width, soft hyphen, bidi controls, variation selectors,
NUL) slipped between the letters. Markers are therefore searched in a *normalised view* of the text
(NFKC, case-folded, invisible characters dropped, brackets, slashes and look-alike letters mapped to
their ASCII form), and each is reported by the position of its bracket in the *original* text, so that
the caller can defuse just that character and send everything else exactly as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

BRACKETS = "<\uff1c\ufe64\u2039\u2329\u3008\u27e8\u276e\u276c\u29fc\u02c2\u1438\u300a\u27ea\u226e\u2264\u2a7d\ufe3d\ufe3f"
"""Characters read as an opening angle bracket: ``<``, fullwidth and small forms, and look-alikes."""
SLASHES = "/\\\uff0f\uff3c\ufe68\u2044\u2215\u2216\u29f8\u29f5\u2571\u2572\u27cb\u27cd"
"""Characters read as the slash of a closing marker (backslashes too: a model may read ``<\\answer``)."""
# Letters that look Latin in most fonts (Cyrillic, Greek, small capitals), mapped to the letter they imitate.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "с": "c", "е": "e", "і": "i", "ј": "j", "о": "o", "р": "p", "ѕ": "s", "ԛ": "q",
        "ԝ": "w", "х": "x", "у": "y", "ԁ": "d", "һ": "h", "ο": "o", "α": "a", "ν": "v", "τ": "t",
        "ι": "i", "κ": "k", "ρ": "p", "υ": "u", "ϲ": "c", "ѵ": "v", "ɑ": "a", "ı": "i", "ⅰ": "i",
        # Latin small capitals (``</ᴀɴꜱᴡᴇʀ>`` reads as a marker), which NFKC leaves as they are.
        **dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True)),
    }
)  # fmt: skip
# Invisible letters and symbols that are not format characters: Hangul fillers, the braille blank.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_GAP_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me", "Cs", "Co", "Cn"})
_SPACE = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85")
_SUSPECT = re.compile(f"[{re.escape(BRACKETS)}]")
_ASCII_GAPS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def is_gap(char: str) -> bool:
    """True for a character that shows nothing between two others (format, control, combining, filler)."""
    if char in _SPACE:  # control characters that are whitespace: they stay, as whitespace
        return False
    return char in _INVISIBLE or unicodedata.category(char) in _GAP_CATEGORIES


def normalised_view(text: str) -> tuple[str, Sequence[int]]:
    """The text as a reader takes it in, and for each of its characters the index it came from in ``text``.

    NFKC per character, then case-folded; invisible characters dropped; brackets, slashes and look-alike
    letters mapped to ``<``, ``/`` and ASCII letters.
    """
    if text.isascii() and not _ASCII_GAPS.search(text):  # the common case: only case and '\\' to map
        return text.lower().replace("\\", "/"), range(len(text))
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if is_gap(char):
            continue
        form = char if char.isascii() else unicodedata.normalize("NFKC", char)
        for part in form.casefold().translate(_CONFUSABLES):
            if is_gap(part):
                continue
            if part in BRACKETS:
                part = "<"
            elif part in SLASHES:
                part = "/"
            chars.append(part)
            origin.append(index)
    return "".join(chars), origin


def marker_pattern(tags: Iterable[str]) -> re.Pattern[str]:
    """What reads as one of ``tags``' markers, opening or closing, in a normalised view."""
    return re.compile(rf"<\s*/?\s*(?:{'|'.join(map(re.escape, tags))})")


def find_brackets(text: str, pattern: re.Pattern[str]) -> list[int]:
    """Indexes in ``text`` of the bracket of every marker ``pattern`` finds in its normalised view."""
    if not _SUSPECT.search(text):  # no bracket of any kind: nothing can be a marker (the common case)
        return []
    if text.isascii() and not _ASCII_GAPS.search(text):
        # The common case, fast: the view is the text lower-cased, character for character.
        return [match.start() for match in pattern.finditer(text.lower().replace("\\", "/"))]
    view, origin = normalised_view(text)
    return sorted({origin[match.start()] for match in pattern.finditer(view)})
