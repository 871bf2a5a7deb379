"""Alembic environment: the database URL comes from shoal's settings, the schema from its models."""

from alembic import context

from services.common.db import get_engine
from services.common.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=str(get_engine().url), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = get_engine(url) if url else get_engine()
    with engine.connect() as connection:
        # Batch mode lets ALTERs work on SQLite, which cannot alter columns in place.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
