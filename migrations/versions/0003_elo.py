"""elo: players, matches (the append-only log), ratings (derived), match jobs and batches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 09:53:07.502895
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('players',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=True),
    sa.Column('env_version', sa.String(length=32), nullable=False),
    sa.Column('refused', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('players', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_players_checkpoint_id'), ['checkpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_players_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ux_players_env_name', ['env', 'name'], unique=True)

    op.create_table('match_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.Integer(), nullable=True),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('then', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ratings',
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.Integer(), nullable=False),
    sa.Column('elo', sa.Float(), nullable=False),
    sa.Column('lo', sa.Float(), nullable=False),
    sa.Column('hi', sa.Float(), nullable=False),
    sa.Column('games', sa.Integer(), nullable=False),
    sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('env', 'player_id')
    )
    op.create_table('match_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('player_a', sa.Integer(), nullable=False),
    sa.Column('player_b', sa.Integer(), nullable=False),
    sa.Column('games', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['match_jobs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['player_a'], ['players.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['player_b'], ['players.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('match_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_match_batches_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_match_batches_status'), ['status'], unique=False)

    op.create_table('matches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('player_a', sa.Integer(), nullable=False),
    sa.Column('player_b', sa.Integer(), nullable=False),
    sa.Column('seat_a', sa.SmallInteger(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('score_a', sa.Float(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('timeout', sa.Boolean(), nullable=False),
    sa.Column('env_version', sa.String(length=32), nullable=False),
    sa.Column('code_version', sa.String(length=32), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['match_batches.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['player_a'], ['players.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['player_b'], ['players.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('matches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matches_env'), ['env'], unique=False)
        batch_op.create_index(batch_op.f('ix_matches_player_a'), ['player_a'], unique=False)
        batch_op.create_index(batch_op.f('ix_matches_player_b'), ['player_b'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matches_player_b'))
        batch_op.drop_index(batch_op.f('ix_matches_player_a'))
        batch_op.drop_index(batch_op.f('ix_matches_env'))

    op.drop_table('matches')
    with op.batch_alter_table('match_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_batches_status'))
        batch_op.drop_index(batch_op.f('ix_match_batches_job_id'))

    op.drop_table('match_batches')
    op.drop_table('ratings')
    op.drop_table('match_jobs')
    with op.batch_alter_table('players', schema=None) as batch_op:
        batch_op.drop_index('ux_players_env_name')
        batch_op.drop_index(batch_op.f('ix_players_run_id'))
        batch_op.drop_index(batch_op.f('ix_players_checkpoint_id'))

    op.drop_table('players')
