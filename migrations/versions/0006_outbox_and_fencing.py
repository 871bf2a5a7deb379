"""outbox, runs.queued_at, and (run, key, seq) unique in metrics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=64), nullable=False),
        sa.Column('args', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
    # A worker that kept writing after it lost its run may have left a second point at an ordinal; keep
    # the earliest step of each, as the series' new owner would have.
    op.execute(
        'DELETE FROM metrics WHERE EXISTS (SELECT 1 FROM metrics AS m WHERE m.run_id = metrics.run_id '
        'AND m.key = metrics.key AND m.seq = metrics.seq AND m.step < metrics.step)'
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_series_seq')
        batch_op.create_index('ux_metrics_series_seq', ['run_id', 'key', 'seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ux_metrics_series_seq')
        batch_op.create_index('ix_metrics_series_seq', ['run_id', 'key', 'seq'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('queued_at')
    op.drop_table('outbox')
