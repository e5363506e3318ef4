"""Measure ``evals worker``: one planned run worked by 1, then by 4 worker processes over one PostgreSQL store.

Run from the repository root (needs Debian's ``postgresql`` package and the ``postgres`` extra)::

    .venv/bin/python scripts/bench_workers.py --n 10000 --c 16 --limit 64 --latency-ms 200

A throwaway PostgreSQL server (``evals.store.throwaway``) holds the store; a ``FakeOpenAI`` in its own
process (its CPU not charged to the workers) answers every model call after L ms and counts the calls it
answers at once. Each measurement plans a run of N items (``evals run --plan-only``, offline judge) and
works it with W real ``evals worker`` processes, each sending at most C calls at once
(``--workers-concurrency``), all under the model's ``max_concurrency`` (``--limit``), which the workers
hold together in the store. Printed: wall time and items/s for W=1 and W=4 and their ratio (4 when nothing
but the latency limits them), also between the server's first and last call (process start and the
run's finish left out), the most calls the server saw at once against the limit, the calls it
answered (N each: nothing asked twice), each worker's peak RSS and CPU (``os.wait4``), and the CPU the
PostgreSQL server and the fake server spent meanwhile (on Linux, from ``/proc``): on a machine with few
cores all of it competes for them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fake_child import Server  # scripts/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parent.parent
EVALS = str(Path(sys.executable).parent / "evals")


def cpu_seconds(pid: int) -> float:
    """CPU a process and its reaped children used so far (``/proc/PID/stat``; 0.0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def write_inputs(folder: Path, n: int, limit: int, port: int) -> None:
    """A JSONL suite of n distinct items and an evals.yaml whose model is the fake server."""
    with (folder / "bench.jsonl").open("w") as f:
        for i in range(n):
            item = {
                "id": f"q{i:06d}",
                "area": f"area{i % 6}",
                "question": f"What is {i} + 1?",
                "reference": "42",
            }
            f.write(json.dumps(item) + "\n")
    config = {
        "models": {"bench": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "fake-gpt", "max_tokens": 64,
                             "max_concurrency": limit, "max_retries": 0, "api_key_env": "BENCH_NO_KEY"}},
    }  # fmt: skip
    (folder / "evals.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML


def work(folder: Path, url: str, run_id: str, workers: int, c: int) -> dict:
    """Plan ``run_id``, work it with ``workers`` processes; wall seconds and each worker's RSS and CPU."""
    env = {**os.environ, "EVALS_STORE": url, "BENCH_NO_KEY": "x"}
    common = ["--config", str(folder / "evals.yaml"), "--reports", str(folder / "reports")]
    plan = [EVALS, "run", "--suite", str(folder / "bench.jsonl"), "--judge", "offline", "--plan-only",
            "--run-id", run_id, *common]  # fmt: skip
    subprocess.run(plan, env=env, check=True, capture_output=True, cwd=ROOT)
    cmd = [EVALS, "worker", run_id, "--workers-concurrency", str(c), *common]
    logs = [(folder / f"{run_id}-{w}.log").open("w") for w in range(workers)]
    t0, start = time.perf_counter(), time.time()
    procs = [subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT) for log in logs]
    usage = {}
    for proc in procs:
        _, status, used = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{shlex.join(cmd)} failed; see {folder}")
        usage[proc.pid] = (used.ru_maxrss / 1024, used.ru_utime + used.ru_stime)
    wall = time.perf_counter() - t0
    for log in logs:
        log.close()
    return {"wall": wall, "start": start, "rss": [u[0] for u in usage.values()], "cpu": [u[1] for u in usage.values()],
            "cmd": shlex.join([Path(cmd[0]).name, *cmd[1:]])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="items")
    parser.add_argument("--c", type=int, default=16, help="--workers-concurrency of each worker")
    parser.add_argument("--limit", type=int, default=64, help="the model's max_concurrency (the fleet's)")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="server latency per call")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    import psycopg

    from evals.store.throwaway import throwaway_postgres

    n, c, limit = args.n, args.c, args.limit
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(
        f"python {sys.version.split()[0]} · {os.cpu_count()} cpus · N={n} C={c} limit={limit} L={args.latency_ms:g} ms"
    )
    server = Server(latency)
    try:
        with throwaway_postgres() as pg, tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            name = "bench_" + uuid.uuid4().hex[:8]
            with psycopg.connect(pg.url(), autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            folder = Path(tmp)
            write_inputs(folder, n, limit, server.port)
            results = {}
            postmaster = int((pg.socket_dir.parent / "data" / "postmaster.pid").read_text().split()[0])
            for workers in (1, 4):
                server.ask("reset")
                before = cpu_seconds(postmaster), cpu_seconds(server.proc.pid)
                results[workers] = r = work(folder, pg.url(name), f"bench-{workers}", workers, c)
                time.sleep(0.5)  # the workers' server processes reaped
                stats = server.stats()
                used = cpu_seconds(postmaster) - before[0], cpu_seconds(server.proc.pid) - before[1]
                ideal = n * latency / min(limit, workers * c)
                first, last = stats["seen"]
                r["calls"] = last - first
                expected = "" if stats["count"] == n else " !!"
                print(f"\n{workers} worker(s): {r['cmd']}  (×{workers})")
                print(
                    f"  wall                {r['wall']:8.2f} s   (start → first call {first - r['start']:.2f} s)"
                )
                print(f"  first → last call   {r['calls']:8.2f} s   ideal N·L/min(limit, W·C) {ideal:.2f} s")
                print(
                    f"  items/s             {n / r['wall']:8.1f}     ({n / r['calls']:.1f} first → last call)"
                )
                print(
                    f"  most calls at once  {stats['max_in_flight']:8d}     limit {limit}, W·C {workers * c}"
                )
                print(f"  server calls        {stats['count']:8d}     (expected {n}{expected})")
                print(f"  peak RSS per worker {', '.join(f'{m:.1f}' for m in r['rss'])} MB")
                print(f"  CPU per worker      {', '.join(f'{s:.1f}' for s in r['cpu'])} s")
                print(f"  CPU PostgreSQL      {used[0]:8.1f} s   fake server {used[1]:.1f} s")
            ratio, calls = results[1]["wall"] / results[4]["wall"], results[1]["calls"] / results[4]["calls"]
            print(f"\nthroughput 4 workers / 1 worker: {ratio:.2f} (wall), {calls:.2f} (first to last call)")
    finally:
        server.close()


if __name__ == "__main__":
    main()
