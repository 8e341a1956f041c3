"""Requests run a few at a time on threads, results yielded as they complete."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def run_batched(
    work: Callable[[In], Out],
    items: Iterable[In],
    concurrency: int,
    most: int,
    *,
    stopped: Callable[[], bool],
    stop: Callable[[], None],
) -> Generator[list[Out], None, None]:
    """`work(item)` for each item, `concurrency` at a time, yielding every result ready at
    once (at most `most` a list, in the order their items came); the threads keep working
    while the caller handles a list.

    At most `concurrency + 2 + most` results are held at once: the caller's list, the ones
    ready behind it and the ones on the way. If the caller stops early (shutdown, a fatal
    error), `stop()` is called: what is in flight must then end at once instead of running
    on in the background.
    """
    pending: dict[Future[Out], int] = {}
    ready: list[tuple[int, Future[Out]]] = []
    source = enumerate(items)
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="fetch")
    finished = False

    def top_up() -> None:
        while len(pending) < concurrency + 2 and len(pending) + len(ready) < concurrency + 2 + most:
            if stopped():
                return
            entry = next(source, None)
            if entry is None:
                return
            index, item = entry
            pending[pool.submit(work, item)] = index

    try:
        top_up()
        while pending or ready:
            # Block for one result only when none is waiting; otherwise take what is done.
            done, _ = wait(pending, timeout=0 if ready else None, return_when=FIRST_COMPLETED)
            ready.extend((pending.pop(future), future) for future in done)
            ready.sort(key=lambda entry: entry[0])
            batch, ready = ready[:most], ready[most:]
            top_up()
            yield [future.result() for _, future in batch]
        finished = True
    finally:
        if not finished:
            stop()
        # On an early exit queued items are dropped and running ones are not waited for:
        # they fail fast once stopped.
        pool.shutdown(wait=finished, cancel_futures=True)
