"""How `evals report` and `evals index` scale with the history: 2 stored runs against many.

Generates exported runs (``manifest.json`` and ``results.jsonl``, as ``Store.export_jsonl`` writes them),
loads them with the real ``evals import`` (a subprocess), then times the real ``evals report`` and
``evals index`` (subprocesses, median of ``--repeat``, the two stores alternately) on a store holding the
first 2 runs and on one holding all of them; on SQLite and on a throwaway PostgreSQL (Debian's ``initdb``/``pg_ctl``, as the tests
start it). Prints each figure with the command that produced it.

    .venv/bin/python scripts/bench_history.py                        # 365 runs x 2000 items, both stores
    .venv/bin/python scripts/bench_history.py --runs 20 --items 200  # a quick try
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evals.records import Answer, Item, Judgment, RunManifest
from evals.store.rows import export_manifest, result_row
from evals.store.throwaway import throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent
EVALS = [sys.executable, "-m", "evals"]
AREAS = [f"area{i:02d}" for i in range(10)]


def write_exports(out: Path, runs: int, items: int, seed: int = 7) -> list[Path]:
    """``runs`` nightly runs of one suite, each ``items`` items in 10 areas, one sample, ~1 % errors."""
    rng = random.Random(seed)
    suite = [
        Item(id=f"q{i:05d}", area=AREAS[i % len(AREAS)], question=f"question {i}?", reference=f"ref {i}")
        for i in range(items)
    ]
    start = datetime(2025, 12, 1, 2, 0, tzinfo=UTC)
    folders = []
    for r in range(runs):
        run_id = f"nightly-{r:04d}"
        began = start + timedelta(days=r)
        manifest = RunManifest(
            run_id=run_id, suite_name="bench", suite_path="suites/bench", suite_hash="h", model_name="local",
            model="qwen", judge_name="claude", judge_model="claude-test", rubric_name="correctness",
            rubric_hash="r1", samples=1, started_at=began.isoformat(), model_id="qwen-1", status="finished",
            ended_at=(began + timedelta(minutes=30)).isoformat(), lookingglass_version="bench",
            rubrics=("correctness@r1",),
        )  # fmt: skip
        folder = out / run_id
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(export_manifest(manifest, suite))
        lines = []
        for it in suite:
            answer = Answer(run_id, it.id, 0, "an answer", 40, 20, rng.uniform(50, 900), "qwen-1")
            failed = rng.random() < 0.01
            score = None if failed else rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
            judgment = Judgment(
                run_id, it.id, 0, score, "because", "{}", "claude (claude-test)", f"k-{run_id}-{it.id}",
                False, 300, 30, rng.uniform(200, 2000), "unparseable verdict" if failed else None, "r1", "fp",
                "claude-test-1",
            )  # fmt: skip
            lines.append(json.dumps(result_row(run_id, it, 0, answer, [judgment]).to_dict()))
        (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
        folders.append(folder)
    return folders


def timed(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a Unix socket; yields a URL template with ``{db}`` for the database."""
    try:
        with throwaway_postgres() as server:
            yield server.url("{db}")
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None


def measure(
    backend: str, exports: Path, folders: list[Path], work: Path, repeat: int, pg: str | None
) -> None:
    """Import the first 2 runs into one store and all of them into another, then time each command on
    both stores alternately, so a change in the machine's load falls on both alike."""
    stores = []
    for count in sorted({min(2, len(folders)), len(folders)}):
        reports = work / f"{backend}-{count}"
        reports.mkdir()
        env = dict(os.environ)
        if pg is not None:
            db = f"bench_{count}"
            subprocess.run(["psql", pg.format(db="postgres"), "-qc", f"CREATE DATABASE {db}"], check=True)
            env["EVALS_STORE"] = pg.format(db=db)
        source = exports if count == len(folders) else work / "first2"
        if count != len(folders):
            source.mkdir(exist_ok=True)
            for f in folders[:count]:
                if not (source / f.name).exists():
                    shutil.copytree(f, source / f.name)
        wall = timed([*EVALS, "import", str(source), "--reports", str(reports)], env)
        where = f"EVALS_STORE={env['EVALS_STORE']} " if pg is not None else ""
        print(f"[{backend}, {count} runs] {where}evals import {source} --reports {reports}: {wall:.1f} s")
        stores.append((count, reports, env, where))
    for command in ("report", "index"):
        walls: dict[int, list[float]] = {count: [] for count, *_ in stores}
        for _count, reports, env, _ in stores:
            timed([*EVALS, command, "--reports", str(reports)], env)  # once untimed: the OS cache
        for _ in range(repeat):
            for count, reports, env, _ in stores:
                walls[count].append(timed([*EVALS, command, "--reports", str(reports)], env))
        for count, reports, _, where in stores:
            w = walls[count]
            print(
                f"[{backend}, {count} runs] {where}evals {command} --reports {reports}: "
                f"median {statistics.median(w):.2f} s of {', '.join(f'{x:.2f}' for x in w)}"
            )
        if len(stores) == 2:
            ratio = statistics.median(walls[stores[1][0]]) / statistics.median(walls[stores[0][0]])
            print(f"[{backend}] evals {command}: {stores[1][0]} runs / {stores[0][0]} runs = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        began = time.perf_counter()
        folders = write_exports(work / "exports", args.runs, args.items)
        print(
            f"generated {args.runs} exported runs x {args.items} items in {time.perf_counter() - began:.1f} s"
        )
        print(f"startup: python -m evals --help: {timed([*EVALS, '--help'], dict(os.environ)):.2f} s")
        if args.backend in ("sqlite", "both"):
            measure("sqlite", work / "exports", folders, work, args.repeat, None)
        if args.backend in ("postgresql", "both"):
            with postgres() as url:
                measure("postgresql", work / "exports", folders, work, args.repeat, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
