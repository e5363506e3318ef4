"""Text from suites, servers and models made safe to print on a terminal.

A terminal interprets escape sequences (ANSI colours, OSC 8 links, OSC title changes, cursor moves), C1
controls and bidi overrides in whatever it is sent, and rich parses ``[markup]`` in strings. A name from a
suite or an error body from a server is data, so ``visible`` shows every such character as a readable
escape (``\\x1b``, ``\\u202e``) and ``plain`` wraps the result in a rich ``Text``, which is never parsed
for markup. Logging from the package goes through ``SafeLogHandler``, which does the same.
"""

from __future__ import annotations

import logging
import unicodedata

from rich.console import Console
from rich.text import Text

_HIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp")
"""Control, format (bidi overrides, zero-width), lone surrogates, line and paragraph separators."""
_KEEP = {"\u200d"}  # the zero-width joiner only glues emoji together; showing it would break them


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, newlines: bool = False) -> str:
    """``text`` with every control, format and separator character shown as an escape, never interpreted.

    With ``newlines``, ``\\n`` is kept (for messages meant to span lines); otherwise it is shown as ``\\x0a``
    so a name cannot forge a line of output.
    """
    return "".join(
        _escape(ch)
        if unicodedata.category(ch) in _HIDDEN and ch not in _KEEP and not (newlines and ch == "\n")
        else ch
        for ch in text
    )


def plain(text: object, newlines: bool = False) -> Text:
    """A rich ``Text`` of ``visible(str(text))``: printed as is, no markup, no escape sequence."""
    return Text(visible(str(text), newlines=newlines))


class SafeLogHandler(logging.Handler):
    """Prints log records of the package (retry warnings carry server error bodies) as safe lines."""

    def __init__(self, console: Console, level: int = logging.WARNING):
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format must not crash the run
            message = f"{record.msg!r} {record.args!r}"
        prefix = "warning: " if record.levelno < logging.ERROR else "error: "
        self.console.print(plain(prefix + message), soft_wrap=True)
