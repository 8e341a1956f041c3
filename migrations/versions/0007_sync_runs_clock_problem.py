"""sync_runs.clock_problem: why a cycle did not believe the vendor's clock (NULL: it did)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("clock_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("clock_problem")
