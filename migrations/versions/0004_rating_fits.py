"""rating_fits: the newest match each env's last refit covered, so refits with nothing new are skipped

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rating_fits',
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('env_version', sa.String(length=32), nullable=False),
    sa.Column('through_match_id', sa.BigInteger(), nullable=False),
    sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('env')
    )


def downgrade() -> None:
    op.drop_table('rating_fits')
