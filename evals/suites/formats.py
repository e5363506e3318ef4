"""Each suite format read into raw records: an item's fields as written, and where each came from.

YAML (with ``defaults:`` and the suite's policy), JSONL, CSV, parquet, a folder of such files, a folder
saved by ``datasets`` and ``hf:`` datasets on the Hub all become ``Record``s in one ``Read``, with the
problems found while reading; ``evals.suites.validation`` then checks the records. Also the wording of
problems both steps share: where a field is (``problem_at``), what a value is (``describe``).
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import Problem
from evals.names import InvalidName, check_label
from evals.outbound.sensitivity import AreaLevels, read_suite_policy
from evals.records import Item
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
REJECTED_SUFFIX = ".rejected.jsonl"
"""``evals suite review`` keeps rejected items in ``<file>.rejected.jsonl``: never read as part of a suite."""
"""File types a suite can be written in; a folder's other files (README, notes) are ignored."""
ITEM_FIELDS = tuple(Item.model_fields)
YAML_KEYS = ("suite", "defaults", "items", "sensitivity", "areas", "redact")
HF_PREFIX = "hf:"
HF_DEFAULT_SPLIT = "test"
# Fields that hold text: a number written there (`reference: 42`, a CSV id 7) means its digits.
TEXT_FIELDS = ("id", "area", "question", "reference", "rubric")
DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
"""Files that mark a folder saved by ``datasets``."""
EXPECTED = {
    "tags": "a list of strings, e.g. [easy, recall]",
    "messages": "a list of turns, each a mapping with 'role' and 'content'",
    "metadata": "a mapping",
}
"""What a structured field must hold, as problems say it."""
UNREADABLE = object()
"""Stands for a cell that could not be read (bad JSON), already reported: its field is left out."""


@dataclass
class Record:
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
class Read:
    """What a source gave: raw records, the suite name it declares, and the problems found so far."""

    path: str
    records: list[Record] = field(default_factory=list)
    name: str | None = None
    problems: list[Problem] = field(default_factory=list)
    policy: AreaLevels = field(default_factory=AreaLevels)
    """Sensitivity (suite, per area) and custom redaction patterns declared in the suite's YAML."""

    def add(self, line: int | None, name: str | None, message: str) -> Read:
        """Add a problem in this source."""
        self.problems.append(Problem(self.path, line, name, message))
        return self


def read_source(spec: str) -> Read:
    if spec.startswith(HF_PREFIX):
        return _read_hub(spec)
    path = Path(spec)
    if path.is_dir():
        saved = any((path / marker).is_file() for marker in DATASET_MARKERS)
        read = _read_saved_dataset(spec, path) if saved else _read_folder(spec, path)
        read.name = read.name or path.name or path.resolve().name
    elif path.exists():
        read = _read_file(spec, path)
        read.name = read.name or path.stem
    else:
        read = Read(spec).add(None, None, "no such file or folder")
    return read


def is_suite_file(path: Path) -> bool:
    """Whether a suite folder reads ``path`` as one of its files: a file of a suite format, not hidden, not a
    README, not what people rejected in ``evals suite review``."""
    name = path.name.lower()
    return (
        path.suffix.lower() in SUITE_EXTENSIONS
        and not name.startswith((".", "readme"))
        and not name.endswith(REJECTED_SUFFIX)
        and path.is_file()
    )


def _read_folder(spec: str, folder: Path) -> Read:
    merged = Read(spec)
    for file in sorted(folder.iterdir()):
        if is_suite_file(file):
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


def _read_file(spec: str, path: Path) -> Read:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        message = f"unsupported file type {path.suffix!r}: expected one of {', '.join(SUITE_EXTENSIONS)}"
        return Read(spec).add(None, None, message)
    try:
        if not path.is_file():  # a FIFO, socket or device: never opened (a FIFO would block the read)
            return Read(spec).add(None, None, "is not a regular file; give the path of a suite file")
        read = reader(spec, path)
    except UserFileError as e:
        return Read(spec).add(e.line, None, e.reason)
    except OSError as e:
        return Read(spec).add(None, None, f"cannot read the file: {e.strerror or e}")
    if not read.records and not read.problems:
        read.add(None, None, "empty suite: the file has no items")
    return read


def _decode(data: bytes, read: Read) -> str:
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


def _read_yaml(spec: str, path: Path) -> Read:
    read = Read(spec)
    text = _decode(read_bytes(path), read)
    try:
        # Repeated keys are kept and reported with the rest of the problems, not one at a time.
        doc = parse_yaml(text, spec, duplicates="keep")
    except UserFileError as e:
        return read.add(e.line, None, e.reason)
    if isinstance(doc, YamlMapping):
        _read_yaml_suite(read, doc)
    elif doc is not None:
        read.add(1, None, f"expected a mapping with 'items' (and 'suite', 'defaults'), got {describe(doc)}")
    return read


def _read_yaml_suite(read: Read, doc: YamlMapping) -> None:
    _add_repeated(read, doc, "")
    for key, line in doc.key_lines.items():
        if key not in YAML_KEYS:
            read.add(line, key, unknown(key, YAML_KEYS, "top-level key"))
    read.problems += read_suite_policy(read.path, doc, read.policy)
    read.name = doc.text.get("suite", "").strip() or None
    if "suite" in doc and not read.name:
        read.add(doc.key_lines["suite"], "suite", f"expected the suite's name, got {describe(doc['suite'])}")
    for _, message in label_problem("suite", read.name or "x", "suite name"):
        read.add(doc.key_lines["suite"], "suite", message)
    defaults = doc.get("defaults")
    if defaults is not None and not isinstance(defaults, YamlMapping):
        read.add(doc.key_lines["defaults"], "defaults", f"expected a mapping, got {describe(defaults)}")
    defaults = defaults if isinstance(defaults, YamlMapping) else YamlMapping()
    _add_repeated(read, defaults, "defaults.")
    for key in [key for key in defaults if key == "id" or key not in ITEM_FIELDS]:
        message = (
            "'id' cannot have a default: each item needs its own"
            if key == "id"
            else unknown(key, ITEM_FIELDS)
        )
        read.add(defaults.key_lines[key], f"defaults.{key}", message)
        del defaults[key]
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        got = "empty suite: no items" if items == [] else f"expected a list of items, got {describe(items)}"
        read.add(doc.key_lines.get("items"), "items", got if "items" in doc else "missing 'items'")
        return
    for index, item in enumerate(items):
        prefix = f"items[{index}]."
        if not isinstance(item, YamlMapping):
            read.add(
                doc.key_lines["items"], prefix[:-1], f"expected a mapping of fields, got {describe(item)}"
            )
            continue
        _add_repeated(read, item, prefix)
        # The text as written: `reference: 3.10` is "3.10" and `reference: no` is "no", not 3.1 and False.
        written = {key: value for key, value in item.text.items() if key in TEXT_FIELDS}
        taken = {key: defaults.key_lines[key] for key in defaults if key not in item}
        data = {**{key: defaults[key] for key in taken}, **item, **written}
        read.records.append(Record(read.path, data, item.line, item, prefix, from_defaults=taken))


def _add_repeated(read: Read, mapping: YamlMapping, prefix: str) -> None:
    for key, line, first in mapping.repeated:
        read.add(line, prefix + key, f"duplicate key (first on line {first})")


def _read_jsonl(spec: str, path: Path) -> Read:
    read = Read(spec)
    for line in parse_jsonl(_decode(read_bytes(path), read)):
        if line.problem is not None:
            read.add(line.line, None, line.problem)
        elif isinstance(line.value, dict):
            read.records.append(Record(spec, line.value, line.line))
        else:
            read.add(
                line.line, None, f"expected a JSON object (one item per line), got {describe(line.value)}"
            )
    return read


def _read_csv(spec: str, path: Path) -> Read:
    read = Read(spec)
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
                _add_row(read, Record(spec, dict(zip(header, row, strict=False)), start))
    except csv.Error as e:
        read.add(reader.line_num, None, f"CSV error: {e}")
    return read


def _read_parquet(spec: str, path: Path) -> Read:
    import pyarrow  # heavy; only parquet suites need it
    import pyarrow.parquet

    try:
        # pyarrow rather than pandas: an integer column with gaps stays integer (pandas makes 7 into 7.0).
        table = pyarrow.parquet.read_table(path)
    except pyarrow.ArrowException as e:
        return Read(spec).add(None, None, f"cannot read the parquet file: {e}")
    return _read_rows(spec, table.column_names, table.to_pylist())


def _read_saved_dataset(spec: str, folder: Path) -> Read:
    import datasets  # slow to import; only datasets need it

    try:
        data = datasets.load_from_disk(str(folder))
    except Exception as e:  # any failure of a third-party reader on user data is a problem to report
        return Read(spec).add(None, None, f"cannot load the saved dataset: {e}")
    if isinstance(data, datasets.DatasetDict):
        if HF_DEFAULT_SPLIT not in data and len(data) != 1:
            message = f"saved DatasetDict has splits {', '.join(data)}: expected one, or one named 'test'"
            return Read(spec).add(None, None, message)
        data = data[HF_DEFAULT_SPLIT if HF_DEFAULT_SPLIT in data else next(iter(data))]
    return _read_rows(spec, data.column_names, data.to_list())


def _read_hub(spec: str) -> Read:
    ref = spec.removeprefix(HF_PREFIX)
    name, colon, split = ref.partition(":")
    parts = name.split("/")
    if not all(parts) or len(parts) > 3 or (colon and not split):
        message = "expected hf:NAME[:SPLIT] or hf:OWNER/NAME[/CONFIG][:SPLIT], e.g. hf:openai/gsm8k/main:test"
        return Read(spec).add(None, None, message)
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
        return Read(spec).add(None, None, message)
    read = _read_rows(spec, data.column_names, data.to_list())
    read.name = ref
    return read


def _read_rows(spec: str, columns: list[str], rows: list[dict[str, Any]]) -> Read:
    read = Read(spec)
    _check_columns(read, None, columns)
    for number, row in enumerate(rows, 1):
        _add_row(read, Record(spec, row, number, unit="row"))
    return read


def _check_columns(read: Read, line: int | None, columns: list[str]) -> None:
    for number, name in enumerate(columns, 1):
        if not name:
            read.add(line, None, f"column {number} has no name: expected an item field")
        elif name in columns[: number - 1]:
            read.add(line, name, "column appears twice")
        elif name not in ITEM_FIELDS:
            read.add(line, name, unknown(name, ITEM_FIELDS, "column"))


def _add_row(read: Read, record: Record) -> None:
    """Add a table row (``record.data`` holds its cells): empty cells are absent, tags split, JSON parsed."""
    data: dict[str, Any] = {}
    for name, value in record.data.items():
        if name not in ITEM_FIELDS or value is None or (isinstance(value, str) and not value.strip()):
            continue  # unknown columns were reported once, at the header
        if name == "tags" and isinstance(value, str) and not value.lstrip().startswith("["):
            value = [tag.strip() for tag in value.replace(";", ",").split(",") if tag.strip()]
        elif name in EXPECTED and isinstance(value, str):
            try:
                value = parse_json(value)
            except JsonProblem as e:
                message = f"{e}; expected {EXPECTED[name]} as JSON"
                read.problems.append(problem_at(record, (name,), message))
                value = UNREADABLE
        data[name] = value
    record.data = data
    read.records.append(record)


def label_problem(name: str, value: str, what: str | None = None) -> Iterator[tuple[str, str]]:
    """A control, format or separator character in a label (an escape sequence, a bidi override)."""
    try:
        check_label(value, what or name)
    except InvalidName as exc:
        yield name, str(exc)


def problem_at(record: Record, loc: tuple[str | int, ...], message: str) -> Problem:
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


def unknown(name: str, candidates: Iterable[str], what: str = "field") -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(candidates)}"
    return f"unknown {what} {name!r} ({hint})"


def describe(value: Any) -> str:
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


_READERS = {
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
