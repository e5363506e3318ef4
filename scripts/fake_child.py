"""The fake OpenAI-compatible server the benchmark scripts measure against, in a child process of its own
(its CPU is not charged to what they measure), driven over its stdin.

``Server(latency)`` starts ``python scripts/fake_child.py LATENCY_MS``, which serves a ``FakeOpenAI``
(``evals.fakes``) answering every call after the latency (a verdict when the call asks for a structured
reply, else an answer), prints its port, and answers two lines on stdin: ``stats`` (the calls counted, the
most at once, when the first call arrived, and when the first and the latest were answered, wall clock)
and ``reset``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def serve(latency: float) -> None:
    """Child mode: serve, print the port, answer ``stats`` / ``reset`` lines until stdin closes."""
    from evals.fakes import FakeOpenAI

    arrived: list[float] = []  # when the first call arrived
    answered: list[float] = []  # when the first and the latest call were answered

    def responder(body: dict) -> str | dict:
        answered[len(answered) and 1 :] = [time.time()]
        return {"rationale": "ok", "score": 4} if "response_format" in body else "The answer is 42."

    class Timed(FakeOpenAI):
        def _dispatch(self, method, path, raw, headers):  # type: ignore[no-untyped-def]
            if not arrived:
                arrived.append(time.time())  # wall clock: compared with the parent's, same machine
            return super()._dispatch(method, path, raw, headers)

    with Timed(responder, latency=latency) as server:
        print(server.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {
                    "count": server.count(),
                    "max_in_flight": server.max_in_flight,
                    "first": arrived[0] if arrived else None,
                    "seen": answered[:2],
                }
                print(json.dumps(stats), flush=True)
            elif line.strip() == "reset":
                server.clear()
                server.max_in_flight = 0
                arrived.clear()
                answered.clear()
                print("ok", flush=True)


class Server:
    """The fake server's child process."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(latency * 1000)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, Any]:
        return json.loads(self.ask("stats"))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    serve(float(sys.argv[1]) / 1000)
