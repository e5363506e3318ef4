"""The one way to read a file a person wrote: YAML or JSONL, defensively, with ``file:line`` errors.

Suites, rubrics, ``evals.yaml`` and ``--policy`` files all come through here, so every file a user writes
fails the same helpful way, and none can hurt the process that reads it:

* only regular files are read (a folder or a FIFO given as a file is a one-line error, and a FIFO is never
  opened in a way that could block);
* YAML aliases may add at most ``MAX_ALIAS_NODES`` nodes when expanded, or ``ALIAS_RATIO`` times the
  nodes written (a "billion laughs" file of nested anchors is refused in milliseconds instead of taking
  all memory);
* nesting is limited to ``MAX_DEPTH`` levels in YAML and JSON (an error with the line, not a
  ``RecursionError``);
* a key given twice in one mapping is an error (YAML and JSON would silently keep the last one).

A file too large to hold whole (a run's export) is read a chunk or a line at a time (``read_chunks``,
``read_lines``), with the same checks.

YAML mappings come back as ``YamlMapping``: a dict that remembers its line, each key's line and the
scalars as written, so that validation errors can say ``file:line: field: what is wrong``.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, NoReturn

import yaml
from pydantic import ValidationError
from yaml.composer import Composer
from yaml.events import AliasEvent, ScalarEvent

try:  # libyaml's scanner and parser when PyYAML has them (several times faster); same safe constructor
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

from evals.errors import EvalsError

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings (JSON: arrays and objects) a file may have."""
MAX_ALIAS_NODES = 200_000
"""Nodes that YAML aliases (``*name``, ``<<: *name``) may add to a document once expanded, or
``ALIAS_RATIO`` times the nodes written, whichever is more (a large suite may share a block per item)."""
ALIAS_RATIO = 10

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UserFileError(EvalsError):
    """A file a user wrote cannot be read: ``path:line: reason``."""

    def __init__(self, path: str | Path, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}" if line else f"{self.path}: {reason}")


def _raise(exc: UserFileError, error: type[EvalsError] | None) -> NoReturn:
    if error is None or error is UserFileError:
        raise exc
    raise error(str(exc)) from None


# -- reading bytes -----------------------------------------------------------------------------------


@contextmanager
def _open_regular(path: str | Path, error: type[EvalsError] | None) -> Iterator[BinaryIO]:
    """``path`` opened for reading bytes if it is a regular file; a folder, FIFO, socket or device is refused.

    The file is opened non-blocking and checked on the open descriptor, so a FIFO swapped in between a
    check and the open still cannot make the read wait for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        _raise(UserFileError(path, None, "no such file"), error)
    except IsADirectoryError:
        _raise(UserFileError(path, None, "is a folder, expected a file"), error)
    except OSError as exc:
        _raise(UserFileError(path, None, f"cannot read the file: {exc.strerror or exc}"), error)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _kind(mode)
            _raise(
                UserFileError(path, None, f"is {kind}, not a regular file; give the path of a file"), error
            )
        with os.fdopen(fd, "rb", closefd=False) as stream:
            yield stream
    except IsADirectoryError:
        _raise(UserFileError(path, None, "is a folder, expected a file"), error)
    except OSError as exc:
        _raise(UserFileError(path, None, f"cannot read the file: {exc.strerror or exc}"), error)
    finally:
        os.close(fd)


def read_bytes(path: str | Path, *, error: type[EvalsError] | None = None) -> bytes:
    """The bytes of the regular file ``path``; a folder, FIFO, socket or device is refused in one line."""
    with _open_regular(path, error) as stream:
        return stream.read()


CHUNK_BYTES = 1 << 16
"""Bytes ``read_chunks`` reads at a time."""


def read_chunks(path: str | Path, *, error: type[EvalsError] | None = None) -> Iterator[str]:
    """The UTF-8 text of ``path`` (a regular file; a leading BOM dropped) in pieces of about ``CHUNK_BYTES``,
    never more in memory: for files too large to read whole. Bytes that are not UTF-8 are an error with
    their line, raised when the reader gets there."""
    with _open_regular(path, error) as stream:
        decoder = codecs.getincrementaldecoder("utf-8")()
        line, first = 1, True
        while True:
            data = stream.read(CHUNK_BYTES)
            if first:
                data, first = data.removeprefix(b"\xef\xbb\xbf"), False
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                where = line + data[: max(exc.start, 0)].count(b"\n")
                _raise(UserFileError(path, where, "not valid UTF-8; save the file as UTF-8"), error)
            if text:
                yield text
            if not data:
                return
            line += data.count(b"\n")


def read_lines(path: str | Path, *, error: type[EvalsError] | None = None) -> Iterator[tuple[int, str]]:
    """Each line of ``path`` (``read_chunks``) with its 1-based number, without its ``\\n`` (or ``\\r\\n``).

    Lines end at ``\\n`` only, as in ``parse_jsonl``; one line (and one chunk) at a time is held in memory."""
    number, parts = 1, list[str]()
    for chunk in read_chunks(path, error=error):
        if "\n" not in chunk:  # a long line: its pieces are joined once it ends
            parts.append(chunk)
            continue
        lines = chunk.split("\n")
        lines[0] = "".join([*parts, lines[0]])
        parts = [lines.pop()]
        for line in lines:
            yield number, line.removesuffix("\r")
            number += 1
    rest = "".join(parts)
    if rest:
        yield number, rest.removesuffix("\r")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_text(path: str | Path, *, error: type[EvalsError] | None = None) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped); bytes that are not UTF-8 are an error with the line."""
    data = read_bytes(path, error=error)
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        _raise(UserFileError(path, line, "not valid UTF-8; save the file as UTF-8"), error)


def is_inside(path: Path, folder: Path) -> bool:
    """True when ``path``, with every symlink followed, is ``folder`` or lies inside it."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


# -- YAML --------------------------------------------------------------------------------------------


class YamlMapping(dict[str, Any]):
    """A YAML mapping that remembers where it is, where each key is, and its scalars as written."""

    def __init__(self, *args: Any, line: int = 0) -> None:
        super().__init__(*args)
        self.line = line
        """1-based line where the mapping starts."""
        self.key_lines: dict[str, int] = {}
        """1-based line of each key."""
        self.text: dict[str, str] = {}
        """Scalar values as written (``3.10`` stays ``"3.10"``, ``no`` stays ``"no"``)."""
        self.repeated: list[tuple[str, int, int]] = []
        """Keys given twice: (key, line, line of the first). Only kept with ``duplicates="keep"``."""


class _Refused(Exception):
    """A limit was hit while composing: message and 1-based line."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


class _Loader(Composer, _SafeLoader):
    """``yaml.safe_load``'s loader (no objects from tags) with limits on aliases and depth.

    libyaml scans and parses (no recursion there); the composer is PyYAML's own, in Python, so that each
    node's depth and expanded size can be counted as it is built: an alias adds the size of what it names.
    """

    def __init__(self, stream: str, duplicates: Literal["error", "keep"]) -> None:
        _SafeLoader.__init__(self, stream)
        Composer.__init__(self)
        self.duplicates = duplicates
        self._depth = 0
        self._alias_nodes = 0
        self._written = 0
        self._size: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes once expanded, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, ScalarEvent):  # a leaf (size 1, height 1, the defaults): only its depth counts
            self._written += 1
            if self._depth >= MAX_DEPTH:
                raise _Refused(_too_deep(), _line(event))
            return super().compose_node(parent, index)
        if isinstance(event, AliasEvent):
            line = _line(event)
            node = super().compose_node(parent, index)
            size, height = self._size.get(id(node), (1, 1))
            self._alias_nodes += size
            # Exponential growth (anchors of aliases of anchors) passes any linear bound within a few levels.
            limit = max(MAX_ALIAS_NODES, ALIAS_RATIO * self._written)
            if self._alias_nodes > limit:
                raise _Refused(
                    f"aliases expand to more than {limit:,} values (nested anchors?); "
                    "write the values out or use fewer aliases",
                    line,
                )
            if self._depth + height > MAX_DEPTH:
                raise _Refused(_too_deep(), line)
            return node
        self._written += 1
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(_too_deep(), _line(event))
        node = super().compose_node(parent, index)
        self._depth -= 1
        size, height = 1, 1
        if isinstance(node, yaml.SequenceNode):
            children: Iterable[Any] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = (child for pair in node.value for child in pair)
        else:
            children = ()
        for child in children:
            child_size, child_height = self._size.get(id(child), (1, 1))
            size += child_size
            height = max(height, child_height + 1)
        self._size[id(node)] = (size, height)
        return node


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else 0


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep; flatten the structure"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YamlMapping:
    seen: dict[str, int] = {}
    repeated: list[tuple[str, int, int]] = []
    for key_node, _ in node.value:  # before merges are flattened in: an explicit key may override one
        if key_node.tag == _MERGE_TAG:
            continue
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key in seen:
            if loader.duplicates == "error":
                raise _Refused(f"{key}: duplicate key (first on line {seen[key]}); keep one", line)
            repeated.append((key, line, seen[key]))
        seen.setdefault(key, line)
    mapping = YamlMapping(loader.construct_mapping(node, deep=True), line=node.start_mark.line + 1)
    mapping.repeated = repeated
    for key_node, value_node in node.value:
        key = str(key_node.value)
        mapping.key_lines.setdefault(key, key_node.start_mark.line + 1)
        tag = value_node.tag
        if (
            isinstance(value_node, yaml.ScalarNode)
            and tag.startswith("tag:yaml.org")
            and not tag.endswith("null")
        ):
            mapping.text.setdefault(key, value_node.value)
    return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    try:
        return int(loader.construct_yaml_int(node))
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        limit = sys.get_int_max_str_digits()
        raise _Refused(f"a number has more than {limit} digits; quote it", node.start_mark.line + 1) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_yaml(
    text: str,
    path: str | Path,
    *,
    duplicates: Literal["error", "keep"] = "error",
    error: type[EvalsError] | None = None,
) -> Any:
    """The YAML document in ``text`` (read from ``path``), its mappings as ``YamlMapping``.

    Raises ``error`` (default ``UserFileError``) with ``path:line: what is wrong`` for bad YAML, a key
    given twice (unless ``duplicates="keep"``: then they are listed in ``YamlMapping.repeated``), too
    many alias expansions or too deep nesting.
    """
    loader = _Loader(text, duplicates)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        _raise(UserFileError(path, exc.line, exc.message), error)
    except yaml.MarkedYAMLError as exc:
        _raise(_yaml_problem(path, exc), error)
    except yaml.reader.ReaderError as exc:  # a control character: YAML refuses the whole stream
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line = text[: text.find(chr(character))].count("\n") + 1
        message = f"not valid YAML: character U+{character:04X} is not allowed; write it escaped, in quotes"
        _raise(UserFileError(path, line, message), error)
    except yaml.YAMLError as exc:  # pragma: no cover  (every YAML error PyYAML raises is one of the above)
        _raise(UserFileError(path, None, f"not valid YAML: {exc}"), error)
    finally:
        loader.dispose()


def _yaml_problem(path: str | Path, exc: yaml.MarkedYAMLError) -> UserFileError:
    mark = exc.problem_mark or exc.context_mark
    message = f"not valid YAML: {exc.problem or exc.context}"
    if (exc.problem or "").startswith("mapping values are not allowed"):
        message += "; put text containing ': ' in quotes"
    if exc.context and exc.context_mark and exc.problem:
        message += f" ({exc.context} on line {exc.context_mark.line + 1})"
    return UserFileError(path, mark.line + 1 if mark else None, message)


def load_yaml(
    path: str | Path,
    *,
    duplicates: Literal["error", "keep"] = "error",
    error: type[EvalsError] | None = None,
) -> Any:
    """``parse_yaml`` of the file at ``path`` (a regular file, UTF-8)."""
    return parse_yaml(read_text(path, error=error), path, duplicates=duplicates, error=error)


def line_of(data: Any, loc: Iterable[str | int]) -> int | None:
    """1-based line of the deepest part of ``loc`` (a pydantic error location) found in parsed YAML."""
    line = data.line if isinstance(data, YamlMapping) else None
    node = data
    for part in loc:
        if isinstance(node, YamlMapping) and str(part) in node.key_lines:
            # keys need not be strings (a rubric's scores are 1..5); the error location spells them as text
            key = next((k for k in node if str(k) == str(part)), str(part))
            line, node = node.key_lines[str(part)], node.get(key)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = node.line if isinstance(node, YamlMapping) else line
        else:
            break
    return line


def validation_errors(path: str | Path, data: Any, exc: ValidationError) -> list[str]:
    """Each error of ``exc`` as ``path:line: field: what is wrong``, the line looked up in ``data``."""
    lines = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if part != "[key]"]
        line = line_of(data, loc)
        where = f"{path}:{line}" if line else str(path)
        name = ".".join(str(part) for part in loc) or "(file)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {name}: {message}")
    return lines


# -- JSON and JSONL ----------------------------------------------------------------------------------


class JsonProblem(ValueError):
    """One JSON value that cannot be used; the message says why (without the value's content)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise JsonProblem(f"duplicate key {key!r}; keep one")
        value[key] = item
    return value


def parse_json(text: str) -> Any:
    """One JSON value; ``JsonProblem`` for bad JSON, a key given twice, or nesting deeper than ``MAX_DEPTH``."""
    if _json_depth(text) > MAX_DEPTH:
        raise JsonProblem(_too_deep())
    try:
        value = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:  # pragma: no cover  (the depth check above comes first)
        raise JsonProblem(_too_deep()) from None
    except JsonProblem:
        raise
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise JsonProblem(f"a number has more than {sys.get_int_max_str_digits()} digits; quote it") from None
    if "\\ud" in text.lower():  # an escaped lone surrogate: no character, and no UTF-8 to store or print
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JsonProblem(
                "holds an escaped lone surrogate (\\ud800-\\udfff without its pair), which is no "
                "character; remove it"
            ) from None
    return value


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity; JSON has no such literals, and a score or weight of NaN means nothing.
    raise JsonProblem(f"{name} is not JSON: every number must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"the number {text[:20]} is too large: every number must be finite")
    return value


def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings (an upper bound for invalid JSON; exact for valid)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case: cannot be too deep
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line of a JSONL file: its value, or the problem that kept it from being read."""

    line: int
    """1-based line number."""
    value: Any
    """The parsed value (None when ``problem`` is set)."""
    problem: str | None = None
    """What is wrong with the line."""


def parse_jsonl(text: str) -> Iterator[JsonLine]:
    """Every non-blank line of JSONL ``text``, parsed with ``parse_json``; problems are yielded, not raised."""
    # Lines end at "\n" only: str.splitlines() also splits at U+2028, U+0085 and others, which JSON allows
    # raw inside a string (text pasted from a web page or a PDF has them).
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            yield JsonLine(number, parse_json(line))
        except JsonProblem as exc:
            yield JsonLine(number, None, str(exc))
