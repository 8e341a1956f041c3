"""Each core module `bench.mutation` mutates, and the fast tests meant to guard it."""

from __future__ import annotations

API_TESTS = [
    "tests/test_api_client.py",
    "tests/test_api_mutants.py",
    "tests/test_api_transport.py",
    "tests/test_api_edges.py",
    "tests/test_api_retry.py",
    "tests/test_smallest_unit.py",
    "tests/test_bad_input.py",
    "tests/test_outages_and_refusals.py",
    "tests/test_fast_invariants.py",
]
# Each core module and the fast tests that are meant to guard it.
TARGETS: dict[str, list[str]] = {
    "archiver/rules/plan.py": ["tests/test_plan.py", "tests/test_finality.py"],
    "archiver/rules/finality.py": ["tests/test_finality.py", "tests/test_watermark_move.py"],
    "archiver/store/db.py": [
        "tests/test_db_engine.py",
        "tests/test_readonly.py",
        "tests/test_bad_input.py",
        "tests/test_migrations.py",
        "tests/test_store.py",
        "tests/test_user_path.py",
    ],
    "archiver/store/rollup.py": ["tests/test_query_times.py", "tests/test_migration_0004.py"],
    "archiver/store/upsert.py": [
        "tests/test_store.py",
        "tests/test_finality.py",
        "tests/test_query_times.py",
    ],
    # The fast path tests first: with `-x`, most mutants die there in seconds.
    "archiver/store/state.py": [
        "tests/test_sync_state.py",
        "tests/test_watermark_move.py",
        "tests/test_sync_paths.py",
        "tests/test_store.py",
        "tests/test_finality.py",
        "tests/test_sync_e2e.py",
    ],
    "archiver/cycle/sync.py": [
        "tests/test_recorded_run.py",
        "tests/test_sync_paths.py",
        "tests/test_sync_state.py",
        "tests/test_sync_e2e.py",
        "tests/test_finality.py",
    ],
    "archiver/cycle/answer.py": [
        "tests/test_sync_paths.py",
        "tests/test_outages_and_refusals.py",
        "tests/test_sync_state.py",
        "tests/test_sync_e2e.py",
    ],
    "archiver/vocabulary.py": [
        "tests/test_plan.py",
        "tests/test_vocabulary.py",
        "tests/test_api_client.py",
    ],
    # The API layer: the fake-vendor tests first (`httpx.MockTransport`, milliseconds each).
    **{
        f"archiver/api/{name}.py": API_TESTS
        for name in (
            "series",
            "coverage",
            "decode",
            "clock",
            "retry",
            "translate",
            "client",
            "transport",
        )
    },
    # The service: fast tests only (the e2e service tests start real processes; minutes each).
    "archiver/service/lock.py": [
        "tests/test_mut_lock.py",
        "tests/test_lock.py",
        "tests/test_lock_scope.py",
        "tests/test_fast_invariants.py",
    ],
    "archiver/service/runner.py": [
        "tests/test_mut_runner.py",
        "tests/test_fast_invariants.py",
        "tests/test_webhook_spool.py",
        "tests/test_startup.py",
        "tests/test_first_contact.py",
        "tests/test_outages_and_refusals.py",
    ],
    "archiver/service/webhooks.py": [
        "tests/test_mut_webhooks.py",
        "tests/test_webhooks.py",
        "tests/test_webhook_spool.py",
        "tests/test_fast_invariants.py",
    ],
    "archiver/service/spool.py": [
        "tests/test_mut_spool.py",
        "tests/test_webhook_spool.py",
        "tests/test_webhooks.py",
        "tests/test_fast_invariants.py",
    ],
    "archiver/service/replay.py": [
        "tests/test_mut_replay.py",
        "tests/test_webhook_spool.py",
        "tests/test_fast_invariants.py",
    ],
    "archiver/reading/export.py": [
        "tests/test_mut_export.py",
        "tests/test_export_csv.py",
        "tests/test_output_files.py",
        "tests/test_sqlite_urls.py",
        "tests/test_hostile.py",
    ],
    "archiver/reading/attribution.py": [
        "tests/test_mut_attribution.py",
        "tests/test_fast_invariants.py",
        "tests/test_reconciliation_views.py",
        "tests/test_status.py",
        "tests/test_export_views.py",
    ],
    # Export path safety (the database file and its -wal/-shm never written, FIFOs and devices
    # written in place, links followed) and the archive as the commands open it.
    "archiver/cli/_archive.py": [
        "tests/test_mut_archive.py",
        "tests/test_sqlite_urls.py",
        "tests/test_output_files.py",
        "tests/test_bad_input.py",
        "tests/test_readonly.py",
        "tests/test_lock_scope.py",
        "tests/test_dry_run.py",
        "tests/test_hostile.py",
    ],
}
