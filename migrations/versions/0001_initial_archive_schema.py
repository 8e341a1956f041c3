"""initial archive schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:12:54.006979
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('account_geo_usage',
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('country', sa.String(length=8), nullable=False),
    sa.Column('publishes', sa.BigInteger(), nullable=False),
    sa.Column('views', sa.BigInteger(), nullable=False),
    sa.Column('publish_seconds', sa.BigInteger(), nullable=False),
    sa.Column('view_seconds', sa.BigInteger(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_final', sa.Boolean(), nullable=False),
    sa.CheckConstraint("resolution IN ('Hour', 'Day', 'Month')", name=op.f('ck_account_geo_usage_resolution')),
    sa.PrimaryKeyConstraint('resolution', 'period_start', 'country', name=op.f('pk_account_geo_usage'))
    )
    op.create_table('account_usage',
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('standard_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('standard_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('restream_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('restream_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('restream_seconds', sa.BigInteger(), nullable=True),
    sa.Column('cascade_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('cascade_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_final', sa.Boolean(), nullable=False),
    sa.CheckConstraint("resolution IN ('Hour', 'Day', 'Month')", name=op.f('ck_account_usage_resolution')),
    sa.PrimaryKeyConstraint('resolution', 'period_start', name=op.f('pk_account_usage'))
    )
    op.create_table('stream_geo_usage',
    sa.Column('stream_name', sa.String(length=128), nullable=False),
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('country', sa.String(length=8), nullable=False),
    sa.Column('publishes', sa.BigInteger(), nullable=False),
    sa.Column('views', sa.BigInteger(), nullable=False),
    sa.Column('publish_seconds', sa.BigInteger(), nullable=False),
    sa.Column('view_seconds', sa.BigInteger(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_final', sa.Boolean(), nullable=False),
    sa.CheckConstraint("resolution IN ('Hour', 'Day', 'Month')", name=op.f('ck_stream_geo_usage_resolution')),
    sa.PrimaryKeyConstraint('stream_name', 'resolution', 'period_start', 'country', name=op.f('pk_stream_geo_usage'))
    )
    with op.batch_alter_table('stream_geo_usage', schema=None) as batch_op:
        batch_op.create_index('ix_stream_geo_usage_period', ['resolution', 'period_start'], unique=False)

    op.create_table('stream_usage',
    sa.Column('stream_name', sa.String(length=128), nullable=False),
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('standard_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('standard_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('restream_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('restream_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('restream_seconds', sa.BigInteger(), nullable=True),
    sa.Column('cascade_bytes_in', sa.BigInteger(), nullable=True),
    sa.Column('cascade_bytes_out', sa.BigInteger(), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_final', sa.Boolean(), nullable=False),
    sa.CheckConstraint("resolution IN ('Hour', 'Day', 'Month')", name=op.f('ck_stream_usage_resolution')),
    sa.PrimaryKeyConstraint('stream_name', 'resolution', 'period_start', name=op.f('pk_stream_usage'))
    )
    with op.batch_alter_table('stream_usage', schema=None) as batch_op:
        batch_op.create_index('ix_stream_usage_period', ['resolution', 'period_start'], unique=False)

    op.create_table('sync_gaps',
    sa.Column('dataset', sa.String(length=32), nullable=False),
    sa.Column('stream_name', sa.String(length=128), nullable=False),
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('gap_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('gap_stop', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dataset', 'stream_name', 'resolution', 'gap_start', name=op.f('pk_sync_gaps'))
    )
    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('failed_requests', sa.Integer(), nullable=False),
    sa.Column('rows_written', sa.BigInteger(), nullable=False),
    sa.Column('gaps', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    op.create_table('sync_state',
    sa.Column('dataset', sa.String(length=32), nullable=False),
    sa.Column('stream_name', sa.String(length=128), nullable=False),
    sa.Column('resolution', sa.String(length=5), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('dataset', 'stream_name', 'resolution', name=op.f('pk_sync_state'))
    )
    op.create_table('tracked_streams',
    sa.Column('stream_name', sa.String(length=512), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("source IN ('config', 'cli', 'discovered')", name=op.f('ck_tracked_streams_source')),
    sa.CheckConstraint("status IN ('active', 'dormant', 'refused')", name=op.f('ck_tracked_streams_status')),
    sa.PrimaryKeyConstraint('stream_name', name=op.f('pk_tracked_streams'))
    )



def downgrade() -> None:

    op.drop_table('tracked_streams')
    op.drop_table('sync_state')
    op.drop_table('sync_runs')
    op.drop_table('sync_gaps')
    with op.batch_alter_table('stream_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_stream_usage_period')

    op.drop_table('stream_usage')
    with op.batch_alter_table('stream_geo_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_stream_geo_usage_period')

    op.drop_table('stream_geo_usage')
    op.drop_table('account_usage')
    op.drop_table('account_geo_usage')

