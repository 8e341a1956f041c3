"""`streams import FILE`: bounded reads, inline comments stripped, nothing written on a refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver.cycle.streams import MAX_NAMES_FILE_BYTES
from archiver.store import db
from archiver.store.tables import tracked_streams
from tests.processes import Ran

Cli = Callable[..., Ran]


def _names(database_url: str) -> set[str]:
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(tracked_streams.c.stream_name)).scalars())
    finally:
        engine.dispose()


def test_inline_comments_are_stripped_and_a_hash_inside_a_name_is_kept(
    cli: Cli, tmp_path: Path, database_url: str
) -> None:
    names = tmp_path / "names.txt"
    names.write_text(
        "# the studio's cameras\n"
        "cam-1   # the front door\n"
        "cam-2\t# the back door\n"
        "\n"
        "   \n"
        "   # an indented whole-line comment\n"
        "cam#3\n"
        "cam-4#not-a-comment # but this is\n"
    )
    ran = cli(["streams", "import", str(names)], tmp_path, ARCHIVER_DATABASE_URL=database_url)
    assert ran.returncode == 0, ran.stderr
    assert _names(database_url) == {"cam-1", "cam-2", "cam#3", "cam-4#not-a-comment"}


@pytest.mark.parametrize("source", ["/dev/zero", "huge"])
def test_an_endless_or_huge_file_ends_in_one_line_and_writes_nothing(
    cli: Cli, tmp_path: Path, database_url: str, source: str
) -> None:
    path = Path(source)
    if source == "huge":
        path = tmp_path / "huge.txt"
        with open(path, "w") as handle:
            line = "cam-" + "x" * 90 + "\n"
            for _ in range(MAX_NAMES_FILE_BYTES // len(line) + 2):
                handle.write(line)
    before = _names(database_url)
    ran = cli(["streams", "import", str(path)], tmp_path, ARCHIVER_DATABASE_URL=database_url)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        f"archiver: error: cannot read {path}: larger than 4 MiB; split it"
    ]
    assert _names(database_url) == before


def test_a_file_of_exactly_the_limit_is_imported(
    cli: Cli, tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "big.txt"
    comment = "# " + "padding " * 11 + "\n"  # comments: the size without 40,000 inserts
    last = "cam-last\n"
    body = comment * ((MAX_NAMES_FILE_BYTES - len(last)) // len(comment)) + last
    body = "#" * (MAX_NAMES_FILE_BYTES - len(body) - 1) + "\n" + body
    path.write_text(body)
    assert path.stat().st_size == MAX_NAMES_FILE_BYTES
    ran = cli(["streams", "import", str(path)], tmp_path, ARCHIVER_DATABASE_URL=database_url)
    assert ran.returncode == 0, ran.stderr
    assert _names(database_url) == {"cam-last"}
