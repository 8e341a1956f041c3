"""Requests run a few at a time on threads, results yielded as they complete."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def run_concurrently(
    work: Callable[[In], Out],
    items: Iterable[In],
    *,
    concurrency: int,
    stopped: Callable[[], bool],
    stop: Callable[[], None],
) -> Generator[Out, None, None]:
    """`work(item)` for each item, `concurrency` at a time, yielding results as they complete.

    At most `concurrency + 2` results are held at once. If the caller stops early (shutdown,
    a fatal error), `stop()` is called: what is in flight must then end at once instead of
    running on in the background.
    """
    pending: set[Future[Out]] = set()
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="fetch")
    finished = False
    try:
        for item in items:
            if stopped():
                break
            pending.add(pool.submit(work, item))
            if len(pending) >= concurrency + 2:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
        finished = True
    finally:
        if not finished:
            stop()
        # On an early exit queued items are dropped and running ones are not waited for:
        # they fail fast once stopped.
        pool.shutdown(wait=finished, cancel_futures=True)
