"""A uniform random sample of a run's answers for people to score, stratified by area and kept as a draw.

The answers that ``evals review export`` picks for being doubtful (``evals.trust.review``) are the ones a
person's eye helps most, but they are not a sample of the run: a mean of people's scores over them says
nothing about the run's answers as a whole. ``draw_review`` picks ``n`` of the run's answers (every answer
the model gave, item x sample, whatever its verdict) uniformly at random within each area, the areas given
picks in proportion to their answers (largest remainders; at least one to every area with answers when
``n`` allows), and keeps the draw in the store (``evals.store.human``: its seed, size, each area's answers
and picks, the answers picked), so that ``evals review import --run`` can tell a row of a random sample
from one picked by urgency. The same run, size and seed always pick the same answers.
"""

from __future__ import annotations

import math
import random
import secrets
from datetime import UTC, datetime

from evals.errors import StoreError
from evals.store import Store
from evals.store.human import AreaDraw, Draw, export_human, save_draw
from evals.trust.human import RANDOM
from evals.trust.review import Key, ReviewRow, ReviewRun


def allocate(sizes: dict[str, int], n: int, rng: random.Random) -> dict[str, int]:
    """How many of ``n`` picks each area gets: in proportion to its ``sizes`` (answers), largest remainders
    first (ties drawn by ``rng``), at least 1 to every area with answers when ``n`` is at least their number,
    never more than an area has. ``n`` above the total takes every answer."""
    areas = [a for a, size in sizes.items() if size > 0]
    n = min(n, sum(sizes[a] for a in areas))
    floor: set[str] = set()
    if n >= len(areas):
        while True:  # an area whose share is below one pick gets one; the others share what is left
            rest = [a for a in areas if a not in floor]
            left, pool = n - len(floor), sum(sizes[a] for a in rest)
            small = {a for a in rest if left * sizes[a] < pool}
            if not small or len(small) == len(rest):
                floor |= small
                break
            floor |= small
    rest = [a for a in areas if a not in floor]
    left, pool = n - len(floor), sum(sizes[a] for a in rest)
    quota = {a: left * sizes[a] / pool for a in rest} if pool else {}
    counts = {a: 1 for a in floor} | {a: min(sizes[a], math.floor(quota[a])) for a in rest}
    ties = {a: rng.random() for a in areas}
    order = sorted(rest, key=lambda a: (-(quota[a] - math.floor(quota[a])), ties[a]))
    order += sorted((a for a in areas if a not in order), key=lambda a: ties[a])
    while sum(counts.values()) < n:  # the remainders, then any area with answers to spare
        for area in order:
            if sum(counts.values()) < n and counts[area] < sizes[area]:
                counts[area] += 1
    return {a: counts[a] for a in areas}


def _answered_by_area(run: ReviewRun) -> dict[str, list[Key]]:
    """Every answer the model gave (with its text), by area, in suite order then sample."""
    by_area: dict[str, list[Key]] = {}
    for item in run.items.values():
        for sample in range(run.manifest.samples):
            answer = run.answers.get((item.id, sample))
            if answer is not None and answer.text is not None and answer.error is None:
                by_area.setdefault(item.area, []).append((item.id, sample))
    return by_area


def draw_review(
    store: Store, run: ReviewRun, n: int, seed: int | None = None, now: datetime | None = None
) -> tuple[Draw, list[ReviewRow]]:
    """Draw ``n`` of ``run``'s answers at random, stratified by area, keep the draw in ``store`` (and beside
    the run's export), and return it with the rows to write (reason ``random``, the draw's id), in suite
    order. ``seed`` None draws one (kept with the draw, so the draw can be made again)."""
    by_area = _answered_by_area(run)
    if not by_area:
        raise StoreError(f"run {run.manifest.run_id} has no answers to draw from")
    seed = secrets.randbelow(2**32) if seed is None else seed
    rng = random.Random(seed)
    counts = allocate({a: len(keys) for a, keys in by_area.items()}, n, rng)
    picked = {key for area, keys in by_area.items() for key in rng.sample(keys, counts[area])}
    order = [key for keys in by_area.values() for key in keys]
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    draw = Draw(
        draw_id=f"draw-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
        run_id=run.manifest.run_id, seed=seed, asked=n, drawn_at=moment.isoformat(timespec="seconds"),
        areas=tuple(AreaDraw(area, len(keys), counts[area]) for area, keys in by_area.items()),
        picked=tuple(key for key in order if key in picked),
    )  # fmt: skip
    store.check_key()
    save_draw(store, draw)
    export_human(store, draw.run_id)
    rows = []
    for item_id, sample in draw.picked:
        item, answer = run.items[item_id], run.answers[(item_id, sample)]
        rows.append(
            ReviewRow(
                id=f"{draw.run_id}/{item_id}/{sample}", area=item.area, question=item.prompt_text(),
                reference=item.reference, answer=answer.text or "", reason=RANDOM,
                sensitivity=item.sensitivity, run_id=draw.run_id, draw=draw.draw_id,
            )
        )  # fmt: skip
    return draw, rows
