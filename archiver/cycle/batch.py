"""Answers ready together, stored in one transaction: rows, watermarks, rollups, streams seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from archiver.api.client import FetchResult
from archiver.cycle.answer import (
    count_answer,
    note_strangers,
    settled_rows,
    store_answer,
    write_answer,
)
from archiver.cycle.report import CycleReport, Progress
from archiver.cycle.streams import mark_seen
from archiver.errors import DatabaseError
from archiver.rules.finality import Settlement
from archiver.rules.plan import Policy, Scope
from archiver.store.db import transaction
from archiver.store.owed import Owed
from archiver.store.state import Written
from archiver.vocabulary import ApiRequest

# How many answers one transaction holds at most: a stop or a crash before its commit loses
# at most these (their watermarks did not move, the next cycle asks again), and the fetch
# threads run ahead by as many.
MOST = 64


def store_answers(
    *,
    engine: Engine,
    results: Sequence[FetchResult],
    scopes: Mapping[ApiRequest, tuple[Scope, ...]],
    policy: Policy,
    report: CycleReport,
    progress: Progress | None = None,
) -> None:
    """Store the answers ready together in one transaction: each one's rows with its
    watermarks, the rollups and the streams seen once for all, before the one commit. A
    stop or a crash before it loses the whole batch, and nothing of it is stored: no
    watermark moved, so the next cycle asks for it again. If the database refuses the batch,
    each answer is stored alone, so that a bad one fails only itself."""
    good = [r for r in results if r.error is None]
    # Per stored answer (by identity): its broken scopes and what storing it wrote.
    stored: dict[int, tuple[tuple[Scope, ...], Written]] = {}
    if len(good) > 1:
        settled = [(r, *settled_rows(r, scopes[r.request], policy, report)) for r in good]
        gaps = len(report.gaps)
        try:
            written = _write_all(engine, settled, scopes, policy, report)
        except DatabaseError:
            del report.gaps[gaps:]  # found again as each answer is stored alone
        else:
            for (result, _, broken), done in zip(settled, written, strict=True):
                stored[id(result)] = (broken, done)
    for result in results:
        if id(result) in stored:
            broken, done = stored[id(result)]
            report.requests += 1
            note_strangers(report, result)
            count_answer(report, result, broken, done)
        else:
            # A failed answer, a batch of one, or a batch the database refused.
            store_answer(
                engine=engine,
                result=result,
                scopes=scopes[result.request],
                policy=policy,
                report=report,
            )
        if progress is not None:
            progress(report)


Settled = tuple[FetchResult, Settlement, tuple[Scope, ...]]


def _write_all(
    engine: Engine,
    settled: Sequence[Settled],
    scopes: Mapping[ApiRequest, tuple[Scope, ...]],
    policy: Policy,
    report: CycleReport,
) -> list[Written]:
    """Every answer of the batch written, then its rollups and streams seen, one commit."""
    with transaction(engine) as conn:
        owed = Owed()
        seen: dict[str, datetime] = {}
        written = [
            write_answer(
                conn,
                result,
                scopes[result.request],
                broken,
                settlement,
                policy,
                report,
                owed,
                seen,
            )
            for result, settlement, broken in settled
        ]
        owed.pay(conn)
        mark_seen(conn=conn, last_seen=seen)
    return written
