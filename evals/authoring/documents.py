"""A team's documents as text, read with limits, and cut in chunks for ``evals suite generate``.

Markdown and text are read as they are, HTML through BeautifulSoup (scripts and styles dropped), PDF
through pypdf. A document is untrusted input: a file may be malformed, encrypted, or built to exhaust the
reader (a page tree of a billion pages, a compression bomb, objects nested thousands deep, form objects
that draw each other), or not be what its name says (a PNG named .pdf, UTF-16 or a Word file named .txt,
a folder, a device). Each of those, and a document with no text in it, is one ``ConfigError`` naming the
file and saying what to do, raised before anything is sent anywhere, within these limits:

- a file of at most ``MAX_FILE_BYTES``; at most ``MAX_TEXT_CHARS`` characters of text from one document;
- a PDF of at most ``MAX_PDF_PAGES`` pages, each stream decoded to at most ``PDF_LIMITS`` (pypdf's own
  safety limits, tightened), and read within ``PDF_READ_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import ConfigError

MAX_FILE_BYTES = 100 * 2**20
"""Largest document file read (100 MiB)."""
MAX_TEXT_CHARS = 5_000_000
"""Most characters of text taken from one document (about 2,500 pages of prose)."""
MAX_PDF_PAGES = 2000
"""Most pages read from one PDF."""
PDF_READ_SECONDS = 120.0
"""Longest a PDF may take to read (checked between pages): a file built to keep the reader busy stops."""
PDF_LIMITS: dict[str, Any] = {
    # No page's text needs more than a few megabytes of decoded content; pypdf allows 75 MB a stream.
    **dict.fromkeys(
        (
            "zlib_maximum_output_length",
            "lzw_maximum_output_length",
            "run_length_maximum_output_length",
            "brotli_maximum_output_length",
            "jbig2_maximum_output_length",
            "array_based_stream_maximum_output_length",
        ),
        16_000_000,
    ),
    "stream_parsing_work_maximum_count": 500_000,
    "xform_maximum_invocations_per_extraction": 100,
    "page_tree_maximum_entries": 20_000,
}
"""pypdf's limits (``pypdf.Configuration``) while a document is read (those the installed pypdf has)."""
SUFFIXES = {".md": "text", ".markdown": "text", ".txt": "text", ".text": "text", "": "text",
            ".html": "html", ".htm": "html", ".pdf": "pdf"}  # fmt: skip


class _Unreadable(Exception):
    """What is wrong with a document, for the one-line error that names it."""


def read_document(path: Path) -> str:
    """The text of a Markdown, text, HTML (BeautifulSoup) or PDF (pypdf) document, within the limits of
    the module; a ``ConfigError`` naming the file when it cannot be read, passes one, or holds no text."""
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a document; give each document in it with its own --from")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: not a document I can read (Markdown, text, HTML or PDF)")
    try:
        if not path.is_file():  # a FIFO would block the read, a device (/dev/zero) never end it
            raise _Unreadable("not a regular file; give the path of a document")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Unreadable(_too_large(size))
        text = _read_pdf(path) if kind == "pdf" else _read_text(path, kind)
        if not text.strip():
            raise _Unreadable(
                "no text in it (a scanned PDF has none: give the text of it, after OCR, as a .txt file)"
                if kind == "pdf"
                else "no text in it; give a document that holds some, or leave it out"
            )
    except _Unreadable as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the document: {exc.strerror or exc}") from None
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(f"{path}: {_too_much_text()}")
    return text


def _too_much_text() -> str:
    return f"more than {MAX_TEXT_CHARS} characters of text, the most read from one document; split it"


def _too_large(size: int | None) -> str:
    limit = f"the {MAX_FILE_BYTES:,} bytes read from one document; split it into smaller files"
    return f"{size:,} bytes, more than {limit}" if size is not None else f"more than {limit}"


# What a file holds when it is not what its name says: told by its first bytes, said by name.
_BINARY = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive (a Word or Excel file is one): save it as PDF or text"),
)
_NOT_TEXT = (
    (b"%PDF-", "a PDF: name it .pdf"),
    *_BINARY,
    (b"\xff\xfe", "UTF-16 text: save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text: save it as UTF-8"),
)
_NOT_PDF = "check that it opens in a PDF viewer, or give its text as a .txt file"


def _read_text(path: Path, kind: str) -> str:
    with path.open("rb") as handle:  # never more than the limit, whatever the file grew to since stat()
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _Unreadable(_too_large(None))
    for magic, what in _NOT_TEXT:
        if data.startswith(magic):
            raise _Unreadable(f"not text but {what}")
    try:
        raw = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
    except UnicodeDecodeError as exc:
        raise _Unreadable(
            f"not UTF-8 text (byte {exc.start}): save it as UTF-8, or give the PDF or HTML it came from"
        ) from None
    if "\0" in raw:  # valid UTF-8, yet no text holds NUL: UTF-16 saved without its mark, or a binary file
        raise _Unreadable(
            f"holds NUL characters (the first at character {raw.index(chr(0))}), so it is not text: UTF-16 "
            "saved without its byte-order mark, or a binary file; save it as UTF-8 text"
        )
    raw = raw.removeprefix("\ufeff")  # the byte-order mark some editors write: no part of the text
    if kind != "html":
        return raw
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text("\n")


def _read_pdf(path: Path) -> str:
    from pypdf import Configuration, PdfReader, apply_configuration
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    known = {f.name for f in dataclasses.fields(Configuration)}  # older releases have fewer of the limits
    limits = {name: value for name, value in PDF_LIMITS.items() if name in known}

    with path.open("rb") as handle:  # a PDF viewer looks for the header in the first kilobyte too
        head = handle.read(1024)
    if b"%PDF-" not in head:
        what = next((what for magic, what in _BINARY if head.startswith(magic)), None)
        said = (
            "the file is empty" if not head else f"it is {what}" if what else "it has no PDF header (%PDF-)"
        )
        raise _Unreadable(f"not a readable PDF: {said}; {_NOT_PDF}")

    started = time.monotonic()
    pages: list[str] = []
    size = 0
    # A hostile file makes pypdf warn thousands of times (logging, and a few ``warnings``): the one line
    # this function raises says what matters.
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), apply_configuration(**limits):
            warnings.simplefilter("ignore")
            reader = PdfReader(path)
            count = len(reader.pages)
            if count > MAX_PDF_PAGES:
                raise _Unreadable(
                    f"{count} pages, more than the {MAX_PDF_PAGES} read from one PDF; split it into smaller files"
                )
            for page in reader.pages:
                text = (page.extract_text() or "").replace("\0", "")  # a broken font's glyphs: no text
                size += len(text)
                if size > MAX_TEXT_CHARS:
                    raise _Unreadable(_too_much_text())
                if time.monotonic() - started > PDF_READ_SECONDS:
                    raise _Unreadable(
                        f"took more than {PDF_READ_SECONDS:g} s to read {len(pages) + 1} of its {count} pages; "
                        "split it, or give its text as a .txt file"
                    )
                pages.append(text)
    except (_Unreadable, OSError):
        raise
    except FileNotDecryptedError:
        raise _Unreadable("the PDF is encrypted: give a copy saved without a password") from None
    except LimitReachedError as exc:
        raise _Unreadable(_past_limit(exc)) from None
    except RecursionError:
        raise _Unreadable(
            "the PDF's objects are nested too deeply to read; give its text as a .txt file"
        ) from None
    except MemoryError:
        raise _Unreadable("the PDF needs more memory than there is; give its text as a .txt file") from None
    except Exception as exc:  # pypdf reports a malformed file with errors of many kinds
        limit = _cause(exc, LimitReachedError)  # a bomb in the cross-reference stream comes wrapped
        if limit is not None:
            raise _Unreadable(_past_limit(limit)) from None
        raise _Unreadable(
            f"not a readable PDF ({type(exc).__name__}: {_first_line(exc)}); {_NOT_PDF}"
        ) from None
    finally:
        pypdf_log.setLevel(level)
    return "\n\n".join(pages)


def _past_limit(exc: BaseException) -> str:
    return (
        f"the PDF passes a safety limit of the reader ({_first_line(exc)}): it is far too large or built "
        "to exhaust memory; give its text as a .txt file"
    )


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of ``kind`` it was raised from or while handling, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else "no detail"
    return line if len(line) <= 200 else line[:200] + "…"


def chunks(text: str, size: int) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut between paragraphs (a longer paragraph alone)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    out: list[str] = []
    current = ""
    for paragraph in paragraphs:
        if current and len(current) + len(paragraph) + 2 > size:
            out.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        out.append(current)
    return out


@dataclass(frozen=True)
class Chunk:
    """A piece of one document, asked about in one call."""

    document: str
    """The document's path, as given."""
    start: int
    """Offset of the chunk in the document's text."""
    text: str

    @property
    def key(self) -> str:
        """What the progress file knows the chunk by."""
        return hashlib.sha256(f"{self.document}\0{self.text}".encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """Where the chunk is, for people."""
        return f"{self.document} at character {self.start}"


def document_chunks(paths: Sequence[Path], size: int) -> list[Chunk]:
    """Every document of ``paths`` read (all of them, before anything is asked) and cut in chunks."""
    out = []
    for path in paths:
        text = read_document(path)
        at = 0
        for piece in chunks(text, size):
            first = piece.split("\n\n", 1)[0]
            found = text.find(first, at)
            start = found if found >= 0 else at
            out.append(Chunk(str(path), start, piece))
            at = start
    return out
