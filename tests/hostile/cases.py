"""Hostile strings, shared by the tests in this folder: add a case in one line and every output meets it.

``TEXT`` is text that suites, servers and models may legitimately carry (area and suite names, model ids,
error bodies): it must come out as plain text everywhere. ``BAD_NAMES`` must be refused as run ids,
baseline names and tags; ``GOOD_NAMES`` must be accepted.
"""

from __future__ import annotations

from evals.records import Answer, Item, Judgment, RunManifest
from evals.store import Store

TEXT = {
    "rich_close": "[/]",
    "rich_close_tag": "[/x]",
    "rich_style": "[bold red]boom[/bold red]",
    "rich_emoji": ":warning: :smile:",
    "ansi_csi": "\x1b[31mred\x1b[0m\x1b[2J",
    "osc8_link": "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\",
    "osc_title": "\x1b]0;pwned\x07title",
    "c1_csi": "\x9b31mC1\x9b0m",
    "c1_osc": "\x9d0;pwned\x9c",
    "bidi_override": "safe\u202egnp.exe\u202c",
    "bidi_isolate": "\u2066isolated\u2069",
    "newline": "first\nerror: forged line",
    "carriage_return": "visible\rhidden",
    "backspace_nul": "a\x08b\x00c",
    "line_separator": "a\u2028b\u2029c",
    "md_pipe": "a | b || c",
    "md_link": "[click](https://evil.example/)",
    "md_image": "![x](https://evil.example/pixel.png)",
    "md_html": "<img src=x onerror=alert(1)><script>alert(1)</script>",
    "md_heading": "# Heading",
    "md_list": "- item",
    "md_mention": "@octocat please look",
    "md_emphasis": "**bold** _it_ `code` ~~s~~",
    "md_entity": "&amp; &#64;everyone",
    "xml_controls": "a\x01b\x0bc\ufffe",
    "xml_syntax": ']]> <x a="1"> & \'',
    "long": "x" * 300,
}
"""Printable-or-not text that must be shown as written, never interpreted (area and suite names, ids)."""

BAD_NAMES = [
    "../../x", "/abs", "..", ".", ".hidden", "a/b", "a\\b", "", " ", "a b", "-flag", "x\n", "a\x1bb",
    "[/]", "é", "x" * 129, "C:evil", "a;rm", "\u202eabc",
]  # fmt: skip
"""Refused as run ids, baseline names and tags."""

GOOD_NAMES = ["r1", "20261122T231500Z-3f9a", "prod", "v1.2_rc-3", "A" * 128]


def store_run(
    store: Store,
    run_id: str,
    areas: list[str],
    *,
    score: int = 5,
    per_area: int = 20,
    suite: str = "suite",
    model_id: str = "qwen-1",
    started_at: str = "2026-11-01T00:00:00+00:00",
) -> RunManifest:
    """A finished run whose items are spread over ``areas`` (any text), each answer scored ``score``."""
    items = [
        Item(id=f"i{a}-{k}", area=area, question=f"q{a}-{k}?", reference="r")
        for a, area in enumerate(areas)
        for k in range(per_area)
    ]
    manifest = RunManifest(
        run_id=run_id, suite_name=suite, suite_path="suite.jsonl", suite_hash="h", model_name="local",
        model="qwen", judge_name="claude", judge_model="claude-test", rubric_name="correctness",
        rubric_hash="r1", samples=1, started_at=started_at, model_id=model_id, status="finished",
        config={"model": {"model": model_id}, "judge": {"model": "claude-test"}},
    )  # fmt: skip
    store.create_run(manifest, items)
    for item in items:
        store.save_answer(Answer(run_id, item.id, 0, "answer", 10, 5, 100.0, model_id))
        store.save_judgment(
            Judgment(run_id, item.id, 0, score, "ok", "raw", "claude-test", f"{run_id}-{item.id}")
        )
    store.set_status(run_id, "finished", started_at)
    return manifest
