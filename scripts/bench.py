"""Measure ``evals run`` against its physical limit: a fake OpenAI server with a fixed latency.

Run from the repository root::

    .venv/bin/python scripts/bench.py --n 1000 --c 32 --latency-ms 50
    .venv/bin/python scripts/bench.py --n 1000 --c 32 --latency-ms 500 --skip-bare

A ``FakeOpenAI`` (``evals.fakes``) serves both the model and the judge from a separate process, so its CPU
is not charged to the harness. The real ``evals run`` runs as a subprocess on a generated JSONL suite of N
items with model and judge ``max_concurrency: C``; each call waits L seconds on the server. The script
prints wall time, time to first request, the ideal 2·N·L/C (calls one after another C at a time) and the
pipelined bound N·L/C + L (model and judge pools overlap, each C wide), CPU seconds per item and peak RSS of
the ``evals`` process (from ``os.wait4``), and the calls the server counted. The same 2·N calls made by a
bare ``openai.AsyncOpenAI`` loop with the same two semaphores show what the harness itself costs. Then a
resume with nothing left to do, and ``python -c "import openai"`` against ``evals run``'s first request.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_child import Server  # scripts/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EVALS = str(BIN / "evals")

# The bare loop: the same calls as the harness (answer, then judge with a strict json_schema), straight
# through the SDK, one client per endpoint, each endpoint C wide. argv: port, n, c.
BARE = """
import asyncio, sys
from openai import AsyncOpenAI
port, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
schema = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["rationale", "score"],
    "properties": {"rationale": {"type": "string"}, "score": {"type": "integer"}}}}}
async def main():
    url = f"http://127.0.0.1:{port}/v1"
    model = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    judge = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    sm, sj = asyncio.Semaphore(c), asyncio.Semaphore(c)
    async def one(i):
        async with sm:
            r = await model.chat.completions.create(model="m", max_tokens=64,
                messages=[{"role": "user", "content": f"Question number {i}: what is {i} + 1?"}])
        async with sj:
            v = await judge.chat.completions.create(model="j", max_tokens=1024, temperature=0.0,
                response_format=schema, messages=[{"role": "system", "content": "grade"},
                {"role": "user", "content": r.choices[0].message.content}])
        assert v.choices[0].message.content
    await asyncio.gather(*(one(i) for i in range(n)))
    await model.close(); await judge.close()
asyncio.run(main())
"""


def measure(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` to the end; its start time, wall seconds, CPU seconds and peak RSS (MB)."""
    with log.open("w") as out:
        start = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} exited {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
    return {
        "start": start,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
    }


def write_inputs(folder: Path, n: int, c: int, port: int) -> Path:
    """A JSONL suite of n distinct items and an evals.yaml whose model and judge are the fake server."""
    suite = folder / "suite"
    suite.mkdir()
    with (suite / "bench.jsonl").open("w") as f:
        for i in range(n):
            item = {"id": f"q{i:06d}", "area": f"area{i % 6}", "question": f"What is {i} + 1?"}
            f.write(json.dumps({**item, "reference": str(i + 1)}) + "\n")
    url = f"http://127.0.0.1:{port}/v1"
    config = {
        "models": {"bench": {"provider": "openai", "base_url": url, "model": "fake-gpt", "max_tokens": 64,
                             "max_concurrency": c, "api_key_env": "BENCH_NO_KEY"}},
        "judges": {"bench": {"provider": "openai", "base_url": url, "model": "fake-judge", "rubric": "correctness",
                             "structured": "auto", "max_concurrency": c, "api_key_env": "BENCH_NO_KEY"}},
        "judges_dir": str(ROOT / "judges"),
    }  # fmt: skip
    (folder / "evals.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    return suite


def startup(runs: int = 5) -> dict[str, float]:
    """Median wall seconds of bare interpreter start and of importing the SDKs."""
    times: dict[str, float] = {}
    for label, code in [
        ("python -c pass", "pass"),
        ("python -c 'import openai'", "import openai"),
        ("python -c 'import openai, anthropic'", "import openai, anthropic"),
    ]:
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - t0)
        times[label] = statistics.median(samples)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="items (2·N calls)")
    parser.add_argument("--c", type=int, default=32, help="max_concurrency of model and judge")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="server latency per call")
    parser.add_argument("--skip-bare", action="store_true", help="do not time the bare SDK loop")
    parser.add_argument("--skip-startup", action="store_true", help="do not time interpreter startup")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    n, c = args.n, args.c
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cpus · N={n} C={c} L={args.latency_ms:g} ms")
    server = Server(latency)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            folder = Path(tmp)
            suite = write_inputs(folder, n, c, server.port)
            common = ["--config", str(folder / "evals.yaml"), "--reports", str(folder / "reports")]
            cmd = [EVALS, "run", "--suite", str(suite), "--model", "bench", "--judge", "bench",
                   "--run-id", "bench", *common]  # fmt: skip
            h = measure(cmd, folder / "run.log")
            hs = server.stats()
            ttfr = hs["first"] - h["start"]
            ideal, bound = 2 * n * latency / c, n * latency / c + latency
            print(f"\nevals run: {shlex.join(cmd)}")
            print(f"  wall                {h['wall']:8.2f} s")
            print(f"  ideal 2·N·L/C       {ideal:8.2f} s   wall/ideal {h['wall'] / ideal:.2f}")
            print(f"  pipelined N·L/C+L   {bound:8.2f} s   wall/bound {h['wall'] / bound:.2f}")
            print(f"  first request after {ttfr:8.2f} s   (process start → server saw it)")
            print(f"  CPU                 {h['cpu']:8.2f} s   = {1000 * h['cpu'] / n:.2f} ms/item")
            print(f"  peak RSS            {h['rss_mb']:8.1f} MB")
            print(
                f"  server calls        {hs['count']:8d}     (expected {2 * n}{'' if hs['count'] == 2 * n else ' !!'})"
            )
            print(f"  items/s             {n / h['wall']:8.1f}")

            server.ask("reset")
            cmd = [EVALS, "run", "--resume", "bench", *common]
            r = measure(cmd, folder / "resume.log")
            print(f"\nresume, nothing to do: {shlex.join(cmd)}")
            print(
                f"  wall                {r['wall']:8.2f} s   CPU {r['cpu']:.2f} s   peak RSS {r['rss_mb']:.1f} MB"
            )
            print(f"  server calls        {server.stats()['count']:8d}     (expected 0)")

            if not args.skip_bare:
                server.ask("reset")
                cmd = [sys.executable, "-c", BARE, str(server.port), str(n), str(c)]
                b = measure(cmd, folder / "bare.log")
                bs = server.stats()
                print(f"\nbare SDK loop: {shlex.join([Path(sys.executable).name, '-c', '<BARE>', *cmd[3:]])}")
                print(f"  wall                {b['wall']:8.2f} s   harness/bare {h['wall'] / b['wall']:.2f}")
                print(f"  first request after {bs['first'] - b['start']:8.2f} s")
                print(f"  CPU                 {b['cpu']:8.2f} s   = {1000 * b['cpu'] / n:.2f} ms/item "
                      f"(harness {1000 * h['cpu'] / n:.2f}, extra {1000 * (h['cpu'] - b['cpu']) / n:.2f})")  # fmt: skip
                print(f"  peak RSS            {b['rss_mb']:8.1f} MB")
                print(f"  server calls        {bs['count']:8d}")

            if not args.skip_startup:
                print("\nstartup (median of 5):")
                times = startup()
                for label, seconds in times.items():
                    print(f"  {label:38s} {seconds:6.2f} s")
                sdk = times["python -c 'import openai, anthropic'"]
                print(
                    f"  {'evals run: first request':38s} {ttfr:6.2f} s   (+{ttfr - sdk:.2f} s over the SDKs)"
                )
    finally:
        server.close()


if __name__ == "__main__":
    main()
