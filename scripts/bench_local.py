"""Throughput of the real local model: the bundled SmolLM2-135M on llama.cpp, through ``evals run``.

Run from the repository root (needs the ``local`` extra)::

    .venv/bin/python scripts/bench_local.py                       # threads 2 and 1, concurrency 1 and 4
    .venv/bin/python scripts/bench_local.py --threads 2 --c 1 4 --extra --flash_attn true

For each server setting it starts ``llama_cpp.server`` (``evals.localmodel``), sends one warm-up request,
then runs ``suites/demo`` (54 items) with the offline judge at each concurrency, and prints items/s and
answer tokens/s (sum of ``answer_tokens_out`` in results.jsonl over the ``evals run`` wall time, which
includes about 1.5 s of interpreter start and imports), plus the mean answer latency.

llama-cpp-python's server has no ``--n_parallel``: every completion takes one global lock (``app.py``,
``llama_outer_lock``), so concurrent requests queue and are answered one at a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from evals.defaults import DEMO_SUITE
from evals.localmodel import MODEL_ALIAS, ServerOptions, find_gguf, free_port, stop, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
EVALS = str(Path(sys.executable).parent / "evals")


def run_suite(folder: Path, base_url: str, c: int, max_tokens: int) -> dict[str, float]:
    """One ``evals run`` of the demo suite at concurrency ``c``; wall, items, answer tokens, mean latency."""
    config = {
        "models": {"local": {"provider": "openai", "base_url": base_url, "model": MODEL_ALIAS,
                             "temperature": 0.0, "max_tokens": max_tokens, "max_concurrency": c,
                             "api_key_env": "BENCH_NO_KEY"}},
        "judges_dir": str(ROOT / "judges"),
    }  # fmt: skip
    path = folder / f"evals-c{c}.yaml"
    path.write_text(json.dumps(config))
    run_id = f"local-c{c}-{time.time_ns()}"
    cmd = [EVALS, "run", "--suite", str(DEMO_SUITE), "--model", "local", "--judge", "offline",
           "--run-id", run_id, "--config", str(path), "--reports", str(folder / "reports")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (folder / "reports/runs" / run_id / "results.jsonl").open()]
    errors = sum(1 for r in rows if r.get("error"))
    tokens = sum(r.get("answer_tokens_out") or 0 for r in rows)
    latencies = [r["answer_latency_ms"] for r in rows if r.get("answer_latency_ms") is not None]
    print(f"    {shlex.join(cmd)}")
    return {
        "wall": wall,
        "items": len(rows),
        "errors": errors,
        "tokens": tokens,
        "latency": sum(latencies) / len(latencies) if latencies else float("nan"),
    }


def bench_server(threads: int, extra: list[str], concurrencies: list[int], max_tokens: int) -> None:
    """Start one server setting, warm it up, run the suite at each concurrency, print the figures."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = ServerOptions(n_threads=threads).command(find_gguf(), port) + extra
    print(f"\nserver: {shlex.join(cmd)}")
    process = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_ready(base_url, process)
        warm = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
        httpx.post(f"{base_url}/chat/completions", json=warm, timeout=60).raise_for_status()
        with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
            for c in concurrencies:
                r = run_suite(Path(tmp), base_url, c, max_tokens)
                print(
                    f"  threads={threads} c={c}: wall {r['wall']:.2f} s, {r['items'] / r['wall']:.2f} items/s, "
                    f"{r['tokens'] / r['wall']:.1f} answer tokens/s ({r['tokens']} tokens), "
                    f"mean answer latency {r['latency']:.0f} ms, {r['errors']} errors"
                )
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="--n_threads settings")
    parser.add_argument("--c", type=int, nargs="+", default=[1, 4], help="max_concurrency settings")
    parser.add_argument("--max-tokens", type=int, default=48, help="answer max_tokens (the demo's 48)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more llama_cpp.server args")
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    for threads in args.threads:
        bench_server(threads, args.extra, args.c, args.max_tokens)


if __name__ == "__main__":
    main()
