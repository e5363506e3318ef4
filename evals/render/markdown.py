"""Untrusted text inside Markdown: a table cell or an inline phrase that stays exactly that.

GitHub-flavoured Markdown turns ``|`` into a cell border, a newline into a new block, ``[x](url)`` into a
link, ``![x](url)`` into an image, ``<tag>`` into HTML, ``# x`` after a list marker into a heading, and
``@name`` into a mention that notifies a person. ``md_text`` backslash-escapes the punctuation that starts
any of these (CommonMark lets any ASCII punctuation be escaped), folds whitespace and control characters
into single spaces, and breaks ``@`` mentions with a zero-width space, so the reader sees the text as
written and nothing else.
"""

from __future__ import annotations

import re
import unicodedata

_SPECIAL = re.compile(r"([\\`*_\[\]<>&|!#~(){}$])")
"""Inline syntax: escapes, code, emphasis, links and images, HTML and entities, tables, strikethrough, math."""
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
"""Block syntax that only counts at the start of a line (lists, quotes, setext underlines)."""
# GitHub links @name only after a non-word character (``rubric@hash`` and e-mail addresses are not mentions)
_MENTION = re.compile(r"(?<!\w)@(?=\w)")
_HIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp")


def md_text(value: object) -> str:
    """``value`` as inert inline Markdown on one line; an en dash for None."""
    if value is None:
        return "–"
    text = "".join(" " if unicodedata.category(ch) in _HIDDEN else ch for ch in str(value))
    text = " ".join(text.split())
    text = _SPECIAL.sub(r"\\\1", text)
    text = _LINE_START.sub(
        lambda m: m.group(1) + "".join("\\" + c if not c.isdigit() else c for c in m.group(2)), text
    )
    return _MENTION.sub("@\u200b", text)
