"""A team's documents as text, read with limits, and cut in chunks for ``evals suite generate``.

Markdown and text are read as they are, HTML through BeautifulSoup (scripts and styles dropped), PDF
through pypdf. A document is untrusted input: a file may be malformed, encrypted, or built to exhaust the
reader (a page tree of a billion pages, a compression bomb, objects nested thousands deep, form objects
that draw each other). Each of those is one ``ConfigError`` naming the file and saying what to do, raised
before anything is sent anywhere, within these limits:

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
    the module; a ``ConfigError`` naming the file when it cannot be read or passes one."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: not a document I can read (Markdown, text, HTML or PDF)")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Unreadable(
                f"{size:,} bytes, more than the {MAX_FILE_BYTES:,} bytes read from one document; "
                "split it into smaller files"
            )
        text = _read_pdf(path) if kind == "pdf" else _read_text(path, kind)
    except _Unreadable as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the document: {exc.strerror or exc}") from None
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(f"{path}: {_too_much_text()}")
    return text


def _too_much_text() -> str:
    return f"more than {MAX_TEXT_CHARS} characters of text, the most read from one document; split it"


def _read_text(path: Path, kind: str) -> str:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(
            f"not UTF-8 text (byte {exc.start}): save it as UTF-8, or give the PDF or HTML it came from"
        ) from None
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
                text = page.extract_text() or ""
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
        raise _Unreadable(
            f"the PDF passes a safety limit of the reader ({_first_line(exc)}): it is far too large or built "
            "to exhaust memory; give its text as a .txt file"
        ) from None
    except RecursionError:
        raise _Unreadable(
            "the PDF's objects are nested too deeply to read; give its text as a .txt file"
        ) from None
    except MemoryError:
        raise _Unreadable("the PDF needs more memory than there is; give its text as a .txt file") from None
    except Exception as exc:  # pypdf reports a malformed file with errors of many kinds
        raise _Unreadable(
            f"not a readable PDF ({type(exc).__name__}: {_first_line(exc)}); check that it opens in a PDF "
            "viewer, or give its text as a .txt file"
        ) from None
    finally:
        pypdf_log.setLevel(level)
    return "\n\n".join(pages)


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
