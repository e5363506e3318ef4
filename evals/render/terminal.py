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
    """Prints log records of the package (retry warnings carry server error bodies) as safe lines, folding
    repeats: a dead endpoint's retries print their first warning, then one line with the count.

    A record repeats the one before it when both carry the same ``fold_key`` (set with ``extra``: a retry
    warning's endpoint and reason, whatever its attempt number and wait) or, without one, the same level
    and message. The first is printed at once; the repeats are counted and said in one line (the record's
    ``fold_line``, else its message, then ``(×N)``) when a different record arrives or at ``flush()``,
    which the command calls before its own final lines (an error, the end-of-run summary).
    """

    def __init__(self, console: Console, level: int = logging.WARNING):
        super().__init__(level)
        self.console = console
        self._held: tuple[object, int, str] | None = None
        """The last record's fold key, level and fold line."""
        self._repeats = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format must not crash the run
            message = f"{record.msg!r} {record.args!r}"
        key = getattr(record, "fold_key", None) or (record.levelno, message)
        if self._held is not None and self._held[0] == key:
            self._repeats += 1
            return
        self._say_repeats()
        self._print(record.levelno, message)
        fold_line = getattr(record, "fold_line", None)
        self._held = (key, record.levelno, str(fold_line) if fold_line else f"{message} again")

    def flush(self) -> None:
        """Print the count of the repeats held back, if any."""
        self.acquire()  # emit runs under this lock too (Handler.handle): a retry may log from another thread
        try:
            self._say_repeats()
            self._held = None
        finally:
            self.release()

    def _say_repeats(self) -> None:
        if self._held is not None and self._repeats:
            _, level, line = self._held
            self._print(level, f"{line} (×{self._repeats})")
        self._repeats = 0

    def _print(self, level: int, message: str) -> None:
        prefix = "warning: " if level < logging.ERROR else "error: "
        self.console.print(plain(prefix + message), soft_wrap=True)
