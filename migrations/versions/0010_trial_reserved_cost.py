"""What the budget reserved for each sweep trial when it was proposed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:20:00

Trials proposed before it have none: the search reserves them at the cost model's current bound, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('reserved_cost', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.drop_column('reserved_cost')
