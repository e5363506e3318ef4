"""Suites: load question suites and validate them, reporting every problem with its file, line and field.

A suite is a YAML, JSONL, CSV or parquet file, a folder of them (one suite), a folder saved by Hugging Face
``datasets`` (``save_to_disk``), or ``hf:NAME[:SPLIT]`` on the Hub. Reading is two steps: each format turns
its file into raw records (the item's fields and where they are), then one validator checks every record
against ``Item`` and across records (duplicate ids). Problems are collected, never raised one at a time,
so that an author fixes a file in one pass.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evals.errors import EvalsError, Problem, SuiteError
from evals.judge.rubrics import RUBRIC_NAME_EXPECTED, is_rubric_name
from evals.names import InvalidName, check_label
from evals.outbound.redaction import CustomPattern
from evals.outbound.sensitivity import AreaLevels, Marking, read_suite_policy, resolve_level
from evals.records import Item, Message, content_hash
from evals.userfiles import (
    JsonProblem,
    UserFileError,
    YamlMapping,
    is_inside,
    parse_json,
    parse_jsonl,
    parse_yaml,
    read_bytes,
)

SUITE_EXTENSIONS = (".yaml", ".yml", ".jsonl", ".csv", ".parquet")
"""File types a suite can be written in; a folder's other files (README, notes) are ignored."""
ITEM_FIELDS = tuple(Item.model_fields)
YAML_KEYS = ("suite", "defaults", "items", "sensitivity", "areas", "redact")
HF_PREFIX = "hf:"
HF_DEFAULT_SPLIT = "test"
# Fields that hold text: a number written there (`reference: 42`, a CSV id 7) means its digits.
_TEXT_FIELDS = ("id", "area", "question", "reference", "rubric")
"""What an item's ``rubric`` must look like: a name (``correctness``), never a path or a file name."""
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_EXPECTED = {
    "tags": "a list of strings, e.g. [easy, recall]",
    "messages": "a list of turns, each a mapping with 'role' and 'content'",
    "metadata": "a mapping",
}
_HINTS = {"id": " (a unique id such as 'geo-01')", "area": " (the area of the domain, e.g. 'geography')"}
_BAD = object()
"""Stands for a cell that could not be read (bad JSON), already reported: its field is left out."""


@dataclass(frozen=True)
class Suite:
    """A loaded suite whose every item is valid."""

    name: str
    """The YAML ``suite:`` key if given, else the folder name or file stem (the dataset for ``hf:``)."""
    path: str
    """The path (or ``hf:`` reference) as given by the user."""
    items: tuple[Item, ...]
    """In file order; for a folder, its files sorted by name."""
    hash: str
    """Content hash of the items sorted by id: equal hashes mean the same questions."""
    patterns: tuple[CustomPattern, ...] = ()
    """The suite's own identifiers to redact (``redact:`` in its YAML), besides the built-in kinds."""
    marking: Marking | None = None
    """How far the text of every item of the whole suite may travel today (kept by ``head``/``select``)."""

    def levels(self) -> Marking:
        """The suite's marking today: its own, or made from its items."""
        return self.marking or Marking.of(self.items)

    def head(self, n: int) -> Suite:
        """The first ``n`` items as a suite of their own (with the hash of those items)."""
        return _make_suite(self.name, self.path, self.items[:n], self.patterns, self.levels())

    def select(self, areas: Iterable[str] = (), tags: Iterable[str] = (), limit: int | None = None) -> Suite:
        """The items of any of ``areas`` that carry any of ``tags`` (empty: no filter), at most ``limit``.

        The result keeps the suite's name and has the hash of its own items. An area or tag that no item
        has (a typo, most likely) is an ``EvalsError`` naming those that exist, as is an empty result.
        """
        areas, tags = tuple(dict.fromkeys(areas)), tuple(dict.fromkeys(tags))
        known_areas = sorted({item.area for item in self.items})
        known_tags = sorted({tag for item in self.items for tag in item.tags})
        unknown = [a for a in areas if a not in known_areas]
        if unknown:
            raise EvalsError(
                f"{self.path}: no area {', '.join(map(repr, unknown))}; areas: {', '.join(known_areas)}"
            )
        unknown = [t for t in tags if t not in known_tags]
        if unknown:
            raise EvalsError(
                f"{self.path}: no item tagged {', '.join(map(repr, unknown))}; "
                f"tags: {', '.join(known_tags) or 'none (give items a tags: list)'}"
            )
        chosen = [
            item
            for item in self.items
            if (not areas or item.area in areas) and (not tags or set(tags) & set(item.tags))
        ]
        if not chosen:
            raise EvalsError(
                f"{self.path}: no item is in area {' or '.join(areas)} and tagged {' or '.join(tags)}; "
                "widen --area or --item-tag"
            )
        chosen = chosen[:limit] if limit is not None else chosen
        return _make_suite(self.name, self.path, tuple(chosen), self.patterns, self.levels())


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite file, folder or ``hf:`` dataset. Raises SuiteError listing EVERY problem."""
    read = _read_source(str(path))
    items = _validate(read)
    if read.problems:
        raise SuiteError(_sorted(read.problems))
    return _make_suite(read.name or str(path), str(path), tuple(items), tuple(read.policy.patterns))


def find_problems(path: str | Path) -> list[Problem]:
    """Every problem in a suite (empty when it is valid); never raises for bad content."""
    read = _read_source(str(path))
    _validate(read)
    return _sorted(read.problems)


def suites_in(path: str | Path) -> list[str]:
    """The suites ``path`` holds: itself when it is one, else each suite folder directly inside it.

    A folder with no suite files of its own but subfolders (``suites/``, as ``evals init`` makes it) is a
    folder of suites, each validated and run on its own (ids need only be unique within a suite).
    """
    spec = str(path)
    folder = Path(spec)
    if spec.startswith(HF_PREFIX) or not folder.is_dir() or folder.is_symlink():
        return [spec]
    entries = sorted(folder.iterdir())
    if any(entry.is_file() for entry in entries if entry.suffix.lower() in SUITE_EXTENSIONS) or any(
        (folder / marker).is_file() for marker in _DATASET_MARKERS
    ):
        return [spec]
    inner = [entry for entry in entries if entry.is_dir() and not entry.is_symlink()]
    return [str(Path(spec) / entry.name) for entry in inner if not entry.name.startswith(".")] or [spec]


def _make_suite(
    name: str,
    path: str,
    items: tuple[Item, ...],
    patterns: tuple[CustomPattern, ...] = (),
    marking: Marking | None = None,
) -> Suite:
    # Sensitivity is left out: it says where text may go, not what is asked (hashes stay comparable).
    dumped = [
        item.model_dump(mode="json", exclude={"sensitivity"})
        for item in sorted(items, key=lambda item: item.id)
    ]
    return Suite(name, path, items, content_hash(dumped), patterns, marking)


@dataclass
class _Record:
    """One item as read from a file, before validation."""

    path: str
    data: dict[str, Any]
    line: int | None
    """Where the item starts: a line, or for tables without lines (parquet, datasets) a 1-based row."""
    source: YamlMapping | None = None
    """The YAML mapping, which knows the line of each key."""
    prefix: str = ""
    """Prefix of field names in problems: ``items[2].`` in YAML."""
    unit: str = "line"
    """``line`` or ``row``: how ``line`` is spoken of in messages."""
    from_defaults: dict[str, int] = field(default_factory=dict)
    """Fields taken from the file's ``defaults:``, with the line of the default."""


@dataclass
class _Read:
    """What a source gave: raw records, the suite name it declares, and the problems found so far."""

    path: str
    records: list[_Record] = field(default_factory=list)
    name: str | None = None
    problems: list[Problem] = field(default_factory=list)
    policy: AreaLevels = field(default_factory=AreaLevels)
    """Sensitivity (suite, per area) and custom redaction patterns declared in the suite's YAML."""

    def add(self, line: int | None, name: str | None, message: str) -> _Read:
        """Add a problem in this source."""
        self.problems.append(Problem(self.path, line, name, message))
        return self


def _read_source(spec: str) -> _Read:
    if spec.startswith(HF_PREFIX):
        return _read_hub(spec)
    path = Path(spec)
    if path.is_dir():
        saved = any((path / marker).is_file() for marker in _DATASET_MARKERS)
        read = _read_saved_dataset(spec, path) if saved else _read_folder(spec, path)
        read.name = read.name or path.name or path.resolve().name
    elif path.exists():
        read = _read_file(spec, path)
        read.name = read.name or path.stem
    else:
        read = _Read(spec).add(None, None, "no such file or folder")
    return read


def _read_folder(spec: str, folder: Path) -> _Read:
    merged = _Read(spec)
    for file in sorted(folder.iterdir()):
        if (
            file.is_file()
            and file.suffix.lower() in SUITE_EXTENSIONS
            and not file.name.lower().startswith((".", "readme"))
        ):
            if not is_inside(file, folder):
                # Never read it: a link to ../.env named x.yaml would otherwise show its content in errors.
                message = (
                    "is a link to a file outside the suite folder; copy the file into the folder instead"
                )
                merged.problems.append(Problem(str(Path(spec) / file.name), None, None, message))
                continue
            read = _read_file(str(Path(spec) / file.name), file)
            merged.records += read.records
            merged.problems += read.problems
            merged.problems += merged.policy.merge(read.policy)
            merged.name = merged.name or read.name  # the first file that names the suite
    if not merged.records and not merged.problems:
        merged.add(None, None, f"empty folder: no suite files ({', '.join(SUITE_EXTENSIONS)}) in it")
    return merged


def _read_file(spec: str, path: Path) -> _Read:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        message = f"unsupported file type {path.suffix!r}: expected one of {', '.join(SUITE_EXTENSIONS)}"
        return _Read(spec).add(None, None, message)
    try:
        if not path.is_file():  # a FIFO, socket or device: never opened (a FIFO would block the read)
            return _Read(spec).add(None, None, "is not a regular file; give the path of a suite file")
        read = reader(spec, path)
    except UserFileError as e:
        return _Read(spec).add(e.line, None, e.reason)
    except OSError as e:
        return _Read(spec).add(None, None, f"cannot read the file: {e.strerror or e}")
    if not read.records and not read.problems:
        read.add(None, None, "empty suite: the file has no items")
    return read


def _decode(data: bytes, read: _Read) -> str:
    """The file's text. Each line holding bytes that are not UTF-8 is a problem; the text keeps U+FFFD there."""
    start = offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    # Line by line keeps this linear; a UTF-8 sequence never contains the newline byte.
    for number, raw in enumerate(data[start:].split(b"\n"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            at = offset + e.start
            where = f"byte 0x{data[at]:02x} at byte offset {at} (byte {e.start + 1} of the line)"
            read.add(number, None, f"not valid UTF-8: {where}; save the file as UTF-8")
        offset += len(raw) + 1
    return data[start:].decode("utf-8", errors="replace")


def _read_yaml(spec: str, path: Path) -> _Read:
    read = _Read(spec)
    text = _decode(read_bytes(path), read)
    try:
        # Repeated keys are kept and reported with the rest of the problems, not one at a time.
        doc = parse_yaml(text, spec, duplicates="keep")
    except UserFileError as e:
        return read.add(e.line, None, e.reason)
    if isinstance(doc, YamlMapping):
        _read_yaml_suite(read, doc)
    elif doc is not None:
        read.add(1, None, f"expected a mapping with 'items' (and 'suite', 'defaults'), got {_describe(doc)}")
    return read


def _read_yaml_suite(read: _Read, doc: YamlMapping) -> None:
    _add_repeated(read, doc, "")
    for key, line in doc.key_lines.items():
        if key not in YAML_KEYS:
            read.add(line, key, _unknown(key, YAML_KEYS, "top-level key"))
    read.problems += read_suite_policy(read.path, doc, read.policy)
    read.name = doc.text.get("suite", "").strip() or None
    if "suite" in doc and not read.name:
        read.add(doc.key_lines["suite"], "suite", f"expected the suite's name, got {_describe(doc['suite'])}")
    for _, message in _label_problem("suite", read.name or "x", "suite name"):
        read.add(doc.key_lines["suite"], "suite", message)
    defaults = doc.get("defaults")
    if defaults is not None and not isinstance(defaults, YamlMapping):
        read.add(doc.key_lines["defaults"], "defaults", f"expected a mapping, got {_describe(defaults)}")
    defaults = defaults if isinstance(defaults, YamlMapping) else YamlMapping()
    _add_repeated(read, defaults, "defaults.")
    for key in [key for key in defaults if key == "id" or key not in ITEM_FIELDS]:
        message = (
            "'id' cannot have a default: each item needs its own"
            if key == "id"
            else _unknown(key, ITEM_FIELDS)
        )
        read.add(defaults.key_lines[key], f"defaults.{key}", message)
        del defaults[key]
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        got = "empty suite: no items" if items == [] else f"expected a list of items, got {_describe(items)}"
        read.add(doc.key_lines.get("items"), "items", got if "items" in doc else "missing 'items'")
        return
    for index, item in enumerate(items):
        prefix = f"items[{index}]."
        if not isinstance(item, YamlMapping):
            read.add(
                doc.key_lines["items"], prefix[:-1], f"expected a mapping of fields, got {_describe(item)}"
            )
            continue
        _add_repeated(read, item, prefix)
        # The text as written: `reference: 3.10` is "3.10" and `reference: no` is "no", not 3.1 and False.
        written = {key: value for key, value in item.text.items() if key in _TEXT_FIELDS}
        taken = {key: defaults.key_lines[key] for key in defaults if key not in item}
        data = {**{key: defaults[key] for key in taken}, **item, **written}
        read.records.append(_Record(read.path, data, item.line, item, prefix, from_defaults=taken))


def _add_repeated(read: _Read, mapping: YamlMapping, prefix: str) -> None:
    for key, line, first in mapping.repeated:
        read.add(line, prefix + key, f"duplicate key (first on line {first})")


def _read_jsonl(spec: str, path: Path) -> _Read:
    read = _Read(spec)
    for line in parse_jsonl(_decode(read_bytes(path), read)):
        if line.problem is not None:
            read.add(line.line, None, line.problem)
        elif isinstance(line.value, dict):
            read.records.append(_Record(spec, line.value, line.line))
        else:
            read.add(
                line.line, None, f"expected a JSON object (one item per line), got {_describe(line.value)}"
            )
    return read


def _read_csv(spec: str, path: Path) -> _Read:
    read = _Read(spec)
    reader = csv.reader(io.StringIO(_decode(read_bytes(path), read), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        _check_columns(read, 1, header)
        end = reader.line_num
        for row in reader:
            # A quoted cell may span lines: the record starts right after the previous one ended.
            start, end = end + 1, reader.line_num
            if len(row) > len(header):
                read.add(start, None, f"{len(row)} cells but the header has {len(header)} columns")
            if any(cell.strip() for cell in row):
                _add_row(read, _Record(spec, dict(zip(header, row, strict=False)), start))
    except csv.Error as e:
        read.add(reader.line_num, None, f"CSV error: {e}")
    return read


def _read_parquet(spec: str, path: Path) -> _Read:
    import pyarrow  # heavy; only parquet suites need it
    import pyarrow.parquet

    try:
        # pyarrow rather than pandas: an integer column with gaps stays integer (pandas makes 7 into 7.0).
        table = pyarrow.parquet.read_table(path)
    except pyarrow.ArrowException as e:
        return _Read(spec).add(None, None, f"cannot read the parquet file: {e}")
    return _read_rows(spec, table.column_names, table.to_pylist())


def _read_saved_dataset(spec: str, folder: Path) -> _Read:
    import datasets  # slow to import; only datasets need it

    try:
        data = datasets.load_from_disk(str(folder))
    except Exception as e:  # any failure of a third-party reader on user data is a problem to report
        return _Read(spec).add(None, None, f"cannot load the saved dataset: {e}")
    if isinstance(data, datasets.DatasetDict):
        if HF_DEFAULT_SPLIT not in data and len(data) != 1:
            message = f"saved DatasetDict has splits {', '.join(data)}: expected one, or one named 'test'"
            return _Read(spec).add(None, None, message)
        data = data[HF_DEFAULT_SPLIT if HF_DEFAULT_SPLIT in data else next(iter(data))]
    return _read_rows(spec, data.column_names, data.to_list())


def _read_hub(spec: str) -> _Read:
    ref = spec.removeprefix(HF_PREFIX)
    name, colon, split = ref.partition(":")
    parts = name.split("/")
    if not all(parts) or len(parts) > 3 or (colon and not split):
        message = "expected hf:NAME[:SPLIT] or hf:OWNER/NAME[/CONFIG][:SPLIT], e.g. hf:openai/gsm8k/main:test"
        return _Read(spec).add(None, None, message)
    # The Hub names datasets OWNER/NAME; a third part is the configuration.
    dataset, config = ("/".join(parts[:2]), parts[2]) if len(parts) == 3 else (name, None)
    split = split or HF_DEFAULT_SPLIT
    import datasets  # slow to import; only hf: suites need it

    try:
        data = datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # offline, unknown dataset, missing split...: all are the user's to fix
        message = (
            f"cannot load Hugging Face dataset {dataset!r} (config {config!r}, split {split!r}): {e}"
            " (loading from the Hub needs network access or a local cache)"
        )
        return _Read(spec).add(None, None, message)
    read = _read_rows(spec, data.column_names, data.to_list())
    read.name = ref
    return read


def _read_rows(spec: str, columns: list[str], rows: list[dict[str, Any]]) -> _Read:
    read = _Read(spec)
    _check_columns(read, None, columns)
    for number, row in enumerate(rows, 1):
        _add_row(read, _Record(spec, row, number, unit="row"))
    return read


def _check_columns(read: _Read, line: int | None, columns: list[str]) -> None:
    for number, name in enumerate(columns, 1):
        if not name:
            read.add(line, None, f"column {number} has no name: expected an item field")
        elif name in columns[: number - 1]:
            read.add(line, name, "column appears twice")
        elif name not in ITEM_FIELDS:
            read.add(line, name, _unknown(name, ITEM_FIELDS, "column"))


def _add_row(read: _Read, record: _Record) -> None:
    """Add a table row (``record.data`` holds its cells): empty cells are absent, tags split, JSON parsed."""
    data: dict[str, Any] = {}
    for name, value in record.data.items():
        if name not in ITEM_FIELDS or value is None or (isinstance(value, str) and not value.strip()):
            continue  # unknown columns were reported once, at the header
        if name == "tags" and isinstance(value, str) and not value.lstrip().startswith("["):
            value = [tag.strip() for tag in value.replace(";", ",").split(",") if tag.strip()]
        elif name in _EXPECTED and isinstance(value, str):
            try:
                value = parse_json(value)
            except JsonProblem as e:
                message = f"{e}; expected {_EXPECTED[name]} as JSON"
                read.problems.append(_at(record, (name,), message))
                value = _BAD
        data[name] = value
    record.data = data
    read.records.append(record)


def _validate(read: _Read) -> list[Item]:
    """The valid items of the records read; every problem found is added to ``read.problems``."""
    items: list[Item] = []
    first_of: dict[str, _Record] = {}
    for record in read.records:
        # A cell already reported as unreadable is left out, and nothing more is said about its field.
        unreadable = {name for name, value in record.data.items() if value is _BAD}
        data = _stringify({name: value for name, value in record.data.items() if value is not _BAD})
        said: list[tuple[tuple[str | int, ...], str]] = [((k,), m) for k, m in _question_problems(data)]
        asked = bool(said)
        said += [((k,), m) for k, m in _field_problems(data)]
        try:
            item: Item | None = Item.model_validate(data)
        except ValidationError as e:
            item = None
            for error in e.errors():
                if error["loc"] or not asked:  # an item-level error already said by _question_problems
                    said.append((tuple(error["loc"]), _describe_error(error)))
        found = [_at(record, loc, message) for loc, message in said if not loc or loc[0] not in unreadable]
        item_id = data.get("id")
        if isinstance(item_id, str) and item_id:
            first = first_of.setdefault(item_id, record)
            if first is not record:
                same = first.path == record.path
                where = f"{first.unit} {first.line}" if same else f"{first.path}:{first.line}"
                found.append(_at(record, ("id",), f"duplicate id {item_id!r} (first on {where})"))
        read.problems += found
        if item is not None and not found:
            items.append(item.model_copy(update={"sensitivity": resolve_level(item, read.policy)}))
    read.problems += read.policy.unused_areas({record.data.get("area") for record in read.records})
    return items


def _question_problems(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What ``Item`` checks only once every field is valid, said here so it is reported with the rest."""
    question, messages = data.get("question"), data.get("messages")
    if question is None and not messages and "question" not in data:
        yield "question", "missing 'question' (or 'messages' for a conversation): every item asks something"
    elif (question is None and not messages) or (isinstance(question, str) and not question.strip()):
        yield "question", "'question' is empty: expected the text to ask"
    elif question is not None and messages:
        yield "messages", "has both 'question' and 'messages': give one"


def _field_problems(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What ``Item`` does not check: blank ids and areas, and paths given as rubric names."""
    rubric = data.get("rubric")
    if isinstance(rubric, str) and not is_rubric_name(rubric):
        # A path here would make the judge read any file the suite points at (and show parts of it).
        yield "rubric", f"expected {RUBRIC_NAME_EXPECTED}, got {_describe(rubric)}"
    for name in ("id", "area"):  # blank text would pass Item's non-empty check, and pair or group as nothing
        value = data.get(name)
        if isinstance(value, str) and value and not value.strip():
            yield name, f"'{name}' is blank (only whitespace): expected{_HINTS[name]}"
        elif isinstance(value, str) and value:
            yield from _label_problem(name, value)
    tags = data.get("tags")
    for tag in tags if isinstance(tags, list | tuple) else ():
        if isinstance(tag, str) and not tag.strip():
            yield "tags", f"a tag is blank ({tag!r}): expected a word, e.g. [easy, recall]"
        elif isinstance(tag, str):
            yield from _label_problem("tags", tag, "tag")


def _label_problem(name: str, value: str, what: str | None = None) -> Iterator[tuple[str, str]]:
    """A control, format or separator character in a label (an escape sequence, a bidi override)."""
    try:
        check_label(value, what or name)
    except InvalidName as exc:
        yield name, str(exc)


def _at(record: _Record, loc: tuple[str | int, ...], message: str) -> Problem:
    """A problem about ``loc`` of a record, at the line of that key (or of the default it came from)."""
    if loc and loc[0] in record.from_defaults:
        return Problem(record.path, record.from_defaults[str(loc[0])], "defaults." + _loc_text(loc), message)
    line, node = record.line, record.source
    for part in loc:  # down the YAML mappings to the deepest key that is there
        if isinstance(node, YamlMapping) and part in node.key_lines:
            line, node = node.key_lines[str(part)], node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = node.line if isinstance(node, YamlMapping) else line
        else:
            break
    name = record.prefix + _loc_text(loc) if loc else record.prefix.rstrip(".") or None
    return Problem(
        record.path, line, name, (f"row {record.line}: " if record.unit == "row" else "") + message
    )


def _loc_text(loc: Iterable[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _describe_error(error: Any) -> str:
    """A pydantic error said as what was expected and what was found."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    name = str(loc[-1]) if loc else "item"
    if kind == "missing":
        return f"missing required field '{name}'{_HINTS.get(name, '')}"
    if kind == "extra_forbidden":
        return _unknown(name, tuple(Message.model_fields) if loc[0] == "messages" else ITEM_FIELDS)
    if kind == "string_too_short":
        return f"'{name}' is empty: expected a non-empty string"
    if not loc:
        return str(error["msg"]).removeprefix("Value error, ")
    if len(loc) == 1 and name in _EXPECTED:
        return f"expected {_EXPECTED[name]}, got {_describe(value)}"
    expected = {"string_type": "a string", "literal_error": error.get("ctx", {}).get("expected")}.get(kind)
    return (
        f"expected {expected or str(error['msg']).removeprefix('Input should be ')}, got {_describe(value)}"
    )


def _unknown(name: str, candidates: Iterable[str], what: str = "field") -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(candidates)}"
    return f"unknown {what} {name!r} ({hint})"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list | tuple) else type(value).__name__


def _stringify(data: dict[str, Any]) -> dict[str, Any]:
    """Numbers where text is expected (an id 7, a reference 42, a tag 2024) become their digits."""
    out = dict(data)
    for name in _TEXT_FIELDS:
        if _is_number(out.get(name)):
            out[name] = str(out[name])
    if isinstance(out.get("tags"), list | tuple):
        out["tags"] = [str(tag) if _is_number(tag) else tag for tag in out["tags"]]
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sorted(problems: list[Problem]) -> list[Problem]:
    """Problems without repeats (a bad default is found once per item), file by file, in line order."""
    files = {path: index for index, path in enumerate(dict.fromkeys(p.path for p in problems))}
    return sorted(dict.fromkeys(problems), key=lambda p: (files[p.path], p.line or 0))


_READERS = {
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
