"""Typed links and one name per concept: runs.failure_kind (why a run ended without succeeding, as an enum
code can branch on); match_jobs.then_tick_sweep (the sweep a job's refit ticks, instead of a
[task_name, args] list); sweeps.base renamed overrides (what runs.overrides holds for a run) and
trials.reason renamed proposal (how the search proposed it, not why it failed)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00

Existing rows are classified from the reasons the code wrote until now, and existing follow-ups (only ever
[shoal.sweeper.tick, [sweep_id]]) keep their sweep.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SWEEP_TICK_TASK = 'shoal.sweeper.tick'


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure_kind', sa.String(length=16), nullable=True))
    op.execute(
        """
        UPDATE runs SET failure_kind = CASE
            WHEN status = 'cancelled' THEN 'cancelled'
            WHEN failure_reason LIKE 'nan_loss%' THEN 'nan_loss'
            WHEN failure_reason LIKE 'worker lost%' THEN 'worker_lost'
            ELSE 'crash'
        END
        WHERE status IN ('failed', 'cancelled')
        """
    )

    with op.batch_alter_table('match_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('then_tick_sweep', sa.Integer(), nullable=True))
    bind = op.get_bind()
    jobs = sa.table('match_jobs', sa.column('id', sa.Integer), sa.column('then', sa.JSON),
                    sa.column('then_tick_sweep', sa.Integer))
    for job_id, then in bind.execute(sa.select(jobs.c.id, jobs.c.then).where(jobs.c.then.is_not(None))).all():
        then = json.loads(then) if isinstance(then, str) else then
        if then and then[0] == SWEEP_TICK_TASK:
            bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(then_tick_sweep=then[1][0]))
    with op.batch_alter_table('match_jobs', schema=None) as batch_op:
        batch_op.drop_column('then')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.alter_column('base', new_column_name='overrides')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.alter_column('reason', new_column_name='proposal')


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.alter_column('proposal', new_column_name='reason')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.alter_column('overrides', new_column_name='base')
    with op.batch_alter_table('match_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('then', sa.JSON(), nullable=True))
    bind = op.get_bind()
    jobs = sa.table('match_jobs', sa.column('id', sa.Integer), sa.column('then', sa.JSON),
                    sa.column('then_tick_sweep', sa.Integer))
    rows = bind.execute(sa.select(jobs.c.id, jobs.c.then_tick_sweep).where(jobs.c.then_tick_sweep.is_not(None)))
    for job_id, sweep_id in rows.all():
        bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(then=[SWEEP_TICK_TASK, [sweep_id]]))
    with op.batch_alter_table('match_jobs', schema=None) as batch_op:
        batch_op.drop_column('then_tick_sweep')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('failure_kind')
