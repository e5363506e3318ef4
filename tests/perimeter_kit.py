"""The perimeter's test kit (issue 18), shared by ``test_perimeter.py`` and ``test_perimeter_doors.py``.

A project whose endpoints are fake servers marked ``external: true`` in evals.yaml, with identifiers planted
in every field a command can send (question, reference, answer, rubric, document, labels row) and a
restricted area, and the two checks of the promise:

- ``Project.leaks``: what the external fakes actually received over HTTP (every string of every request
  body, read as a careful attacker would: NFKC, format characters dropped, HTML entities and percent-escapes
  decoded) holds no planted identifier and no restricted item's text;
- ``Project.audit_gaps``: the store beside evals.yaml holds exactly one audit record of kind ``call`` per
  request the fakes received, matched by the SHA-256 of the body as received.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, FakeServer, last_user_text, text_reply
from evals.outbound.audit import CALL
from evals.store import Store
from evals.store.audit import records

SUITE_PATTERN = {"name": "EMPLOYEE_ID", "regex": r"EMP-\d{6}"}
"""The suite's own identifier (``redact:`` in its YAML)."""
CONFIG_PATTERN = {"name": "TICKET", "regex": r"TCK-\d{5}"}
"""The team's identifier for every call (``redaction: {patterns: [...]}`` in evals.yaml)."""
KEY_ENV = "PERIMETER_TEST_KEY"


@dataclass(frozen=True)
class Planted:
    """One identifier written into one field: what it is, and the strings whose presence in sent text
    gives it away (a local part alone is a leak; so are a card's digits with the spaces taken out)."""

    field: str
    kind: str
    value: str
    tells: tuple[str, ...]
    squeezed: tuple[str, ...] = ()
    """Tells looked for in the sent text with whitespace and ``-`` removed (digits split over lines)."""

    def found_in(self, text: str, squeezed: str) -> str | None:
        """The first tell in ``text`` standing on its own (not inside a longer word or number: a card's group
        ``2175`` is no leak inside a span's timestamp ``1764930521750…``), or in ``squeezed``."""
        for tell in self.tells:
            if re.search(rf"(?<![0-9A-Za-z]){re.escape(tell)}(?![0-9A-Za-z])", text):
                return tell
        for tell in self.squeezed:
            if tell in squeezed:
                return tell
        return None


@dataclass(frozen=True)
class Identifiers:
    """The four identifiers planted in one field: two the built-in recognizers know, one of the suite's
    ``redact:`` patterns, one of the config's ``redaction.patterns``."""

    field: str
    email: str
    card: str
    employee: str
    ticket: str

    def sentence(self) -> str:
        return f"write to {self.email}, card {self.card}, employee {self.employee}, ticket {self.ticket}"

    def planted(self, *, suite: bool = True, config: bool = True) -> list[Planted]:
        digits = self.card.replace(" ", "")
        found = [
            Planted(self.field, "email (built-in)", self.email, (self.email.split("@")[0],)),
            Planted(self.field, "card number (built-in)", self.card, tuple(self.card.split()), (digits,)),
        ]
        if suite:
            found.append(
                Planted(self.field, "EMPLOYEE_ID (suite redact:)", self.employee, (self.employee[4:],))
            )
        if config:
            found.append(
                Planted(self.field, "TICKET (config redaction.patterns)", self.ticket, (self.ticket[4:],))
            )
        return found


# Each field gets its own values, so a leak names the field it came from. Cards pass the Luhn check.
QUESTION = Identifiers("question", "quinn.asker@example.com", "4539 2175 3377 2747", "EMP-104729", "TCK-48213")  # fmt: skip
REFERENCE = Identifiers("reference", "rhea.refers@example.net", "5312 7434 1582 3233", "EMP-130363", "TCK-51997")  # fmt: skip
ANSWER = Identifiers("answer", "anson.replies@example.org", "4916 3598 3734 4055", "EMP-161803", "TCK-62351")
RUBRIC = Identifiers("rubric", "ruby.grader@example.com", "5203 6368 5998 4499", "EMP-271828", "TCK-73019")
DOCUMENT = Identifiers("document", "dora.writes@example.com", "4485 4814 7982 7238", "EMP-314159", "TCK-84127")  # fmt: skip
LABELS = Identifiers("labels row", "lara.labels@example.com", "4716 3626 8791 3948", "EMP-577215", "TCK-95143")  # fmt: skip

RESTRICTED_QUESTION = "Which shelf holds the quartzite ledger?"
RESTRICTED_REFERENCE = "The marigold annex."
RESTRICTED = [
    Planted("restricted item", "question", RESTRICTED_QUESTION, ("quartzite",)),
    Planted("restricted item", "reference", RESTRICTED_REFERENCE, ("marigold",)),
]

BILLING = [
    {"id": f"billing-{n}", "area": "billing",
     "question": f"Who settles refund {n}? {QUESTION.sentence()}.",
     "reference": f"The refunds desk, {REFERENCE.sentence()}."}
    for n in (1, 2, 3)
]  # fmt: skip
VAULT = [
    {"id": "vault-1", "area": "vault", "question": RESTRICTED_QUESTION, "reference": RESTRICTED_REFERENCE}
]


def suite_doc(items: Sequence[dict[str, Any]], areas: dict[str, str] | None = None) -> dict[str, Any]:
    """A suite with the suite pattern and the given area levels (default: ``vault`` restricted)."""
    levels = {"vault": "restricted"} if areas is None else areas
    used = {item["area"] for item in items}
    return {
        "suite": "perimeter",
        "redact": [SUITE_PATTERN],
        "areas": {area: {"sensitivity": level} for area, level in levels.items() if area in used},
        "items": list(items),
    }


def leaky_rubric() -> dict[str, Any]:
    """A rubric whose criteria carry identifiers, as a team's rubric naming its escalation contact does."""
    return {
        "name": "leaky",
        "description": "Is the answer right, and does it follow the escalation rule?",
        "show_reference": True,
        "criteria": [
            "Compare the central claim with the reference, which is taken as correct.",
            f"Escalations: {RUBRIC.sentence()}.",
        ],
        "scores": {
            1: "Wrong or no answer.",
            2: "Mostly wrong.",
            3: "Partly right.",
            4: "Right with a minor flaw.",
            5: "Fully correct.",
        },
    }


def answer_with_identifiers(question: str) -> str:
    """The fake model's answer: the question as it arrived (placeholders come back to be restored) and
    identifiers of its own."""
    return f"{question} Also {ANSWER.sentence()}."


def verdict(body: dict[str, Any]) -> dict[str, Any]:
    """The fake judge: 5 when the reference block's text is in the answer block, 1 when not, 4 for a
    prompt without both (so a changed prompt layout still gets a verdict)."""
    text = last_user_text(body)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.S)
    reference = re.search(r"<reference>(.*?)</reference>", text, re.S)
    if not (answer and reference):
        return {"rationale": "graded", "score": 4}
    hit = reference.group(1).strip().lower() in answer.group(1).lower()
    return {"rationale": "matches" if hit else "wrong", "score": 5 if hit else 1}


def write_items(body: dict[str, Any]) -> dict[str, Any]:
    """The fake generator: one item per line of the passage, quoting the line as it arrived (placeholders
    and all: they come back to be restored)."""
    passage = re.search(r"<passage>\n(.*)\n</passage>", last_user_text(body), re.S)
    lines = [line.strip() for line in (passage.group(1) if passage else "").splitlines() if line.strip()]
    items = [
        {
            "question": f"What does the handbook say about {line.split()[0].lower()}?",
            "reference": line,
            "quote": line,
        }
        for line in lines
    ]
    return {"items": items}


def request_text(raw: bytes) -> str:
    """Every string of a request body, one per line, normalised the way a reader defeats disguises."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    text = "\n".join(_strings(body))
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width and the like
    return html.unescape(urllib.parse.unquote(text))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@dataclass
class Fake:
    """A fake server as the project names it in evals.yaml."""

    label: str
    """``model 'ext'``, ``judge 'claude'``: how messages name it."""
    server: FakeServer
    external: bool


@dataclass
class Project:
    """A project folder with its fakes started, evals.yaml written, and the checks of the promise."""

    root: Path
    fakes: dict[str, Fake]
    monkeypatch: pytest.MonkeyPatch

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    def ok(self, *args: str, codes: tuple[int, ...] = (0,)) -> Result:
        """Run a command a case needs as a step; fail the test (not a leak) when it does not work."""
        result = self.invoke(*args)
        assert result.exit_code in codes, f"evals {' '.join(args)} → {result.exit_code}:\n{result.output}"
        return result

    def write(self, name: str, data: Any) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".jsonl"):
            path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data))
        elif isinstance(data, str):
            path.write_text(data)
        else:
            path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path

    def mark(self) -> dict[str, int]:
        """How many requests each fake has received so far: pass as ``since`` to look only after it."""
        return {name: len(fake.server.raw_requests) for name, fake in self.fakes.items()}

    def sent(self, name: str, since: dict[str, int] | None = None) -> list[bytes]:
        """The request bodies fake ``name`` received (after ``since``)."""
        return list(self.fakes[name].server.raw_requests[(since or {}).get(name, 0) :])

    def external_requests(self, since: dict[str, int] | None = None) -> int:
        return sum(len(self.sent(n, since)) for n, f in self.fakes.items() if f.external)

    def leaks(
        self, command: str, planted: Sequence[Planted], since: dict[str, int] | None = None
    ) -> list[str]:
        """One line per (external fake, planted value) it received, saying which command leaked what."""
        found: list[str] = []
        for name, fake in self.fakes.items():
            if not fake.external:
                continue
            bodies = self.sent(name, since)
            texts = [request_text(raw) for raw in bodies]
            for p in planted:
                hits = [tell for text in texts if (tell := p.found_in(text, re.sub(r"[\s-]+", "", text)))]
                if hits:
                    what = "text" if p.field == "restricted item" else p.kind
                    found.append(
                        f"{command}: the external {fake.label} received the {p.field}'s {what} "
                        f"{p.value!r} in {len(hits)} of {len(bodies)} requests (found {hits[0]!r})"
                    )
        return found

    def audit_gaps(self, command: str) -> list[str]:
        """Lines saying where requests the fakes received and the store's call records do not pair up."""
        with Store(self.root / "reports") as store:
            recorded = Counter(r.sha256 for r in records(store) if r.kind == CALL)
        total = sum(recorded.values())
        gaps: list[str] = []
        for fake in self.fakes.values():
            bodies = fake.server.raw_requests
            missing = 0
            for raw in bodies:
                digest = hashlib.sha256(raw).hexdigest()
                if recorded[digest] > 0:
                    recorded[digest] -= 1
                else:
                    missing += 1
            if missing:
                gaps.append(
                    f"{command}: {missing} of the {len(bodies)} requests the {fake.label} received have no "
                    f"audit record (the store holds {total} call records in all)"
                )
        extra = sum(recorded.values())
        if extra:
            gaps.append(f"{command}: {extra} audit records of calls match no request a fake received")
        return gaps


@contextmanager
def perimeter_project(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    config_patterns: bool = True,
    rubric: str = "leaky",
    collector_url: str | None = None,
) -> Iterator[Project]:
    """A project in ``root`` (the test's working folder): external model ``ext``, generator ``writer`` and
    judge ``claude`` (Anthropic), an in-house model and judge ``inhouse`` (``external: false``), the
    leaky rubric in ``judges/``, ``redaction.patterns`` in evals.yaml when ``config_patterns``, a canary of
    4 anchors; with ``collector_url``, telemetry to that collector marked external, messages captured
    (``capture_text``). No suite is written: each test writes its own (``suite_doc``)."""
    monkeypatch.setenv(KEY_ENV, "sk-perimeter-test")
    answers = text_reply(answer_with_identifiers)
    with ExitStack() as stack:
        servers = {
            "ext": (FakeOpenAI(answers, model_id="ext-model"), "model 'ext'", True),
            "writer": (FakeOpenAI(write_items, model_id="writer-model"), "generator 'writer'", True),
            "claude": (FakeAnthropic(verdict, model_id="claude-test-1"), "judge 'claude'", True),
            "inhouse": (FakeOpenAI(answers, model_id="inhouse-model"), "in-house model 'inhouse'", False),
            "inhouse-judge": (
                FakeOpenAI(lambda body: {"rationale": "graded", "score": 4}, model_id="inhouse-judge"),
                "in-house judge 'inhouse'",
                False,
            ),
        }
        fakes = {
            name: Fake(label, stack.enter_context(server), external)
            for name, (server, label, external) in servers.items()
        }

        def endpoint(name: str, **extra: Any) -> dict[str, Any]:
            fake = fakes[name]
            return {
                "base_url": fake.server.url, "model": f"{name}-model", "api_key_env": KEY_ENV,
                "external": fake.external, "max_retries": 0, **extra,
            }  # fmt: skip

        config: dict[str, Any] = {
            "models": {
                "ext": endpoint("ext", max_concurrency=1),
                "writer": endpoint("writer"),
                "inhouse": endpoint("inhouse"),
            },
            "judges": {
                "claude": {**endpoint("claude"), "provider": "anthropic", "rubric": rubric},
                "inhouse": {**endpoint("inhouse-judge"), "rubric": "correctness"},
            },
            "canary": {"size": 4},
        }
        if config_patterns:
            config["redaction"] = {"patterns": [CONFIG_PATTERN]}
        if collector_url is not None:
            config["telemetry"] = {"otlp_endpoint": collector_url, "external": True, "capture_text": True}
        project = Project(root, fakes, monkeypatch)
        project.write("evals.yaml", config)
        project.write("judges/leaky.yaml", leaky_rubric())
        yield project
