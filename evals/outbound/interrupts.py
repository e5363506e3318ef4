"""SIGTERM (and SIGHUP) as Ctrl-C for the event loop of a run.

A service manager, a CI runner or ``kill`` stops a process with SIGTERM, whose default is to die on the
spot: the run would stay marked ``running`` and nothing would be exported. ``run_until_terminated``
makes SIGTERM cancel the running coroutine as Ctrl-C does, so its cleanup runs, then raises
``KeyboardInterrupt`` like Ctrl-C; ``sigterm_interrupts`` does the same outside an event loop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

STOPS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop a run as Ctrl-C does: SIGTERM (kill, CI, a service manager) and SIGHUP (the terminal
or ssh session of a run started by hand was closed)."""


def run_until_terminated(main: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(main())``, with SIGTERM cancelling it as Ctrl-C does, then ``KeyboardInterrupt``."""
    terminated = False

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigterm(signum: int, frame: object) -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                loop.call_soon_threadsafe(task.cancel)

        # Signal handlers can only be set from the main thread; elsewhere SIGTERM keeps its usual effect.
        in_main = threading.current_thread() is threading.main_thread()
        previous = _install(on_sigterm) if in_main else {}
        try:
            return await main()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile (as Ctrl-C does), so a stopped run is left resumable."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = _install(interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _install(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """``handler`` for each of ``STOPS``, but not for one that is ignored (``nohup evals run`` must survive
    the hangup it asked to survive); the handlers it replaced, to put back."""
    return {
        signum: signal.signal(signum, handler)
        for signum in STOPS
        if signal.getsignal(signum) != signal.SIG_IGN
    }
