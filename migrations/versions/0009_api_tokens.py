"""API tokens with scopes, the audit log of writes, who created each run and sweep, and worker heartbeats

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 08:00:00

Existing runs and sweeps have no creating token: only admins (SHOAL_API_TOKEN included) may change them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=8), nullable=False),
        sa.Column('secret_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_sha256'),
    )
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('method', sa.String(length=8), nullable=False),
        sa.Column('path', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])
    op.create_index('ix_audit_log_token_id', 'audit_log', ['token_id'])
    op.create_table(
        'worker_beats',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('queue', sa.String(length=16), nullable=False),
        sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_index('ix_worker_beats_beat_at', 'worker_beats', ['beat_at'])
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_token', sa.Integer(), nullable=True))
        batch_op.create_index('ix_runs_created_by_token', ['created_by_token'])
        batch_op.create_foreign_key(
            'fk_runs_created_by_token', 'api_tokens', ['created_by_token'], ['id'], ondelete='SET NULL'
        )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_token', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_sweeps_created_by_token', 'api_tokens', ['created_by_token'], ['id'], ondelete='SET NULL'
        )


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_constraint('fk_sweeps_created_by_token', type_='foreignkey')
        batch_op.drop_column('created_by_token')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_runs_created_by_token', type_='foreignkey')
        batch_op.drop_index('ix_runs_created_by_token')
        batch_op.drop_column('created_by_token')
    op.drop_index('ix_worker_beats_beat_at', table_name='worker_beats')
    op.drop_table('worker_beats')
    op.drop_index('ix_audit_log_token_id', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_tokens')
