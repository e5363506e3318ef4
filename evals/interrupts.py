"""SIGTERM as Ctrl-C for the event loop of a run.

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
from typing import TypeVar

T = TypeVar("T")


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
        previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main else None
        try:
            return await main()
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

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
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
