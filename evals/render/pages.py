"""The scorecard's pages: one run's scorecard as a self-contained HTML page and as Markdown, written with
its JSON (``write_scorecard``), and the index of every run (``write_index``).

All are made from the typed ``Scorecard`` (``evals.scorecard.build_scorecard``; ``scorecard.json`` is its
serialised form), and the index from each run's figures computed the same way. The HTML page is rendered
by jinja2 with autoescaping and strict undefined variables; model and judge text is never marked safe, and
a Content-Security-Policy forbids every network request and every script but the page's own (by nonce).
Its charts are inline SVG drawn from the figures (geometry in ``charts.py``, drawn by
``templates/charts.html.j2``); the index charts each suite's areas over its latest runs.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from evals.files import write_atomic
from evals.names import check_name, is_name
from evals.records import RunManifest
from evals.render import charts
from evals.render.markdown import md_text
from evals.store import Store
from evals.store.aggregates import OVERALL
from evals.userfiles import parse_json

if TYPE_CHECKING:  # the scorecard package loads scipy and the decision: only the commands that write pages
    from jinja2 import Environment

    from evals.scorecard import Scorecard

log = logging.getLogger(__name__)


def _environment(html: bool = True) -> Environment:
    # Markdown is not HTML: there every untrusted value goes through ``cell`` instead of HTML escaping.
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("evals", "render/templates"),
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=2: "–" if v is None else f"{v:.{digits}f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"
    env.filters["signed"] = lambda v, digits=2: "–" if v is None else f"{v:+.{digits}f}"
    env.filters["fold"] = fold
    return env


TREND_RUNS = 60
"""Runs of a suite on the index's trend chart (the latest ones)."""
FOLD_AT = 160
"""Characters of a long text shown before "more" (the item table, the regressed answers)."""


def fold(text: str, size: int = FOLD_AT) -> tuple[str, str]:
    """``text`` split into what is shown and what a "more" opens: after about ``size`` characters (at a space
    or line break when one is near) or four lines; (``text``, "") when it is short enough to show whole."""
    lines = text.split("\n")
    if len(text) <= size * 5 // 4 and len(lines) <= 4:
        return text, ""
    cut = min(size, len("\n".join(lines[:4])))
    if cut == size:
        space = max(text.rfind(" ", size // 2, size), text.rfind("\n", size // 2, size))
        cut = space if space > 0 else size
    return text[:cut], text[cut:]


def scorecard_charts(card: Scorecard) -> dict[str, charts.Chart | None]:
    """The scorecard's charts: areas (means, intervals, baseline), Δ against the baseline (the intervals
    beside the decision's statuses, and the gate's −margin), score distribution, and history."""
    areas = card.areas
    return {
        "areas": charts.areas_chart(
            [charts.AreaMean(a.area, a.mean, a.ci_low, a.ci_high, a.baseline_mean) for a in areas],
            card.settings.weak_mean,
        ),
        "delta": charts.delta_chart(
            [
                charts.AreaDelta(
                    a.area, a.drift.delta, a.drift.delta_ci_low, a.drift.delta_ci_high, a.drift.status
                )
                for a in areas
            ],
            card.gate.margin,
        )
        if card.baseline
        else None,
        "distribution": charts.distribution_chart(
            [(a.area, a.distribution) for a in areas if a.distribution]
        ),
        "history": charts.trend_chart(
            [charts.TrendRun(h.started_at, h.areas, h.changes) for h in card.history],
            f"mean score per area over the last {len(card.history)} runs of {card.run.suite_name}",
        ),
    }


def render_html(card: Scorecard) -> str:
    """The scorecard as one self-contained HTML page."""
    template = _environment().get_template("scorecard.html.j2")
    return template.render(
        card=card,
        charts=scorecard_charts(card),
        margin=card.gate.margin,
        nonce=secrets.token_urlsafe(16),
        areas_in_items=sorted({i.area for i in card.items}),
    )


def render_markdown(card: Scorecard) -> str:
    """The scorecard's summary in Markdown (for PR comments and step summaries)."""
    return _environment(html=False).get_template("scorecard.md.j2").render(card=card, cell=md_text)


def write_scorecard(card: Scorecard, folder: Path) -> dict[str, Path]:
    """Write ``scorecard.json``, ``scorecard.html`` and ``scorecard.md`` into ``folder``; return their paths.

    ``folder`` is ``evals.names.run_folder`` of the card's run; each file is written atomically.
    """
    check_name(card.run.run_id, "run id")  # the folder was named after it: never a path elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / f"scorecard.{kind}" for kind in ("json", "html", "md")}
    texts = {
        "json": card.model_dump_json(indent=2),
        "html": render_html(card),
        "md": render_markdown(card),
    }
    for kind, path in paths.items():
        write_atomic(path, texts[kind])
    _write_summary(paths["json"], card)
    return paths


SUMMARY = "scorecard.summary.json"
"""Beside ``scorecard.json``: its decision and regressed areas, so the index of a long history parses no full
card."""


@dataclass(frozen=True)
class CardSummary:
    """What the index shows of a run's scorecard: the decision (None: not reported) and regressed areas."""

    regressed: list[str]
    outcome: str | None = None
    baseline: str | None = None


def _summary_of(card: Scorecard) -> CardSummary:
    d = card.decision
    return CardSummary(card.regressed(), d.outcome if d else "no baseline", d.baseline_id if d else None)


def _write_summary(card_path: Path, card: Scorecard) -> None:
    stat = card_path.stat()
    summary = {"card_size": stat.st_size, "card_mtime_ns": stat.st_mtime_ns, **asdict(_summary_of(card))}
    write_atomic(card_path.with_name(SUMMARY), json.dumps(summary))


def _summarized(card_path: Path) -> CardSummary | None:
    """The summary beside ``card_path``, when it describes that very file (same size and modification
    time); None otherwise (no summary, one of an older release, or a card rewritten or edited since)."""
    try:
        summary = parse_json(card_path.with_name(SUMMARY).read_text(encoding="utf-8"))
        stat = card_path.stat()
        if (summary["card_size"], summary["card_mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
            return None
        regressed, outcome, baseline = summary["regressed"], summary["outcome"], summary["baseline"]
        if (
            isinstance(regressed, list)
            and all(isinstance(a, str) for a in regressed)
            and isinstance(outcome, str)
            and (baseline is None or isinstance(baseline, str))
        ):
            return CardSummary(regressed, outcome, baseline)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    return None


def _regressed_before_v3(card: dict[str, Any]) -> list[str]:
    """The regressed areas of a ``scorecard.json`` of an older release (schema 1: flat; 2: nested drift)."""
    areas = card["areas"]
    if not isinstance(areas, list):
        raise TypeError("'areas' is not a list")
    if card.get("schema_version") == 1:
        return [str(a["area"]) for a in areas if a["status"] == "regressed"]
    return [str(a["area"]) for a in areas if a["drift"]["status"] == "regressed"]


def _card_summary(card_path: Path) -> CardSummary | None:
    """What a run's ``scorecard.json`` decided; None (and a warning) when it is unreadable.

    The file may be hand-edited or damaged: one bad card must not stop the index of every run. A card of
    an older release is still read (its regressed areas; its verdict as not reported), so upgrading does
    not unlink every earlier scorecard.
    """
    try:
        data = parse_json(card_path.read_text(encoding="utf-8"))  # depth-limited: no RecursionError
        if isinstance(data, dict) and data.get("schema_version") in (1, 2):
            return CardSummary(_regressed_before_v3(data))
        from evals.scorecard import Scorecard

        return _summary_of(Scorecard.model_validate(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc)
    log.warning(
        "%s: unreadable scorecard (%s), listed without it; rewrite it with evals report", card_path, reason
    )
    return None


def _trends(manifests: list[RunManifest], store: Store) -> list[dict[str, Any]]:
    """Per suite, the trend chart of each area's mean over its latest ``TREND_RUNS`` runs (excluded runs left
    out), from the runs' stored aggregates, as the scorecard's history reads them."""
    from evals.scorecard import history_point, run_changes
    from evals.scorecard.baselines import is_excluded

    by_suite: dict[str, list[RunManifest]] = {}
    for m in manifests:  # oldest first
        if not is_excluded(m):
            by_suite.setdefault(m.suite_name, []).append(m)
    latest = {suite: runs[-TREND_RUNS:] for suite, runs in sorted(by_suite.items())}
    aggregates = store.aggregates([m.run_id for runs in latest.values() for m in runs])
    trends = []
    for suite, runs in latest.items():
        points = [
            history_point(m, aggregates[m.run_id], run_changes(runs[i - 1] if i else None, m))
            for i, m in enumerate(runs)
        ]
        chart = charts.trend_chart(
            [charts.TrendRun(p.started_at, p.areas, p.changes) for p in points],
            f"mean score per area over the last {len(runs)} runs of {suite}",
        )
        trends.append({"suite": suite, "runs": len(runs), "chart": chart})
    return trends


def write_index(store: Store) -> Path:
    """Write ``<reports>/index.html``: per suite, each area's mean over its latest runs (a chart), then every
    run with its date, model, judge and overall score with interval, linked to its scorecard.

    A run whose ``scorecard.json`` is unreadable (or from an older release) is listed without its
    scorecard, with a warning. Runs excluded with ``evals runs exclude`` are listed as such, and left out of
    the charts.
    """
    from evals.scorecard.baselines import is_excluded

    rows = []
    manifests = list(reversed(store.runs()))
    # The scorecard's overall mean and interval, from each run's stored aggregate: no item is read.
    overall = {
        run_id: next(a for a in aggregates if a.area == OVERALL)
        for run_id, aggregates in store.aggregates([m.run_id for m in manifests], area=OVERALL).items()
    }
    for m in manifests:
        mean = overall[m.run_id]
        # A run id from an older store that breaks the name rules gets no link: it must not become a path.
        card_path = store.reports_dir / "runs" / m.run_id / "scorecard.json" if is_name(m.run_id) else None
        summary = None
        if card_path is not None and card_path.exists():
            summary = _summarized(card_path) or _card_summary(card_path)
        rows.append({
            "run_id": m.run_id, "started_at": m.started_at, "suite_name": m.suite_name,
            "model": f"{m.model_name} ({m.model_id or m.model})", "judge_model": m.judge_model,
            "mean": mean.mean, "ci_low": mean.ci_low, "ci_high": mean.ci_high, "n": mean.n_items,
            "status": m.status + (" (excluded)" if is_excluded(m) else ""),
            "regressed": summary.regressed if summary else None,
            "outcome": summary.outcome if summary else None, "baseline": summary.baseline if summary else None,
            "scorecard": f"runs/{m.run_id}/scorecard.html" if summary else None,
        })  # fmt: skip
    trends = _trends(list(reversed(manifests)), store)
    path = store.reports_dir / "index.html"
    page = _environment().get_template("index.html.j2").render(runs=rows, trends=trends, limit=TREND_RUNS)
    return write_atomic(path, page)
