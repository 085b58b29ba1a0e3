"""Alembic environment: always driven programmatically by pingpost.db.migrate with a connection."""

from alembic import context

from pingpost.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `pingpost db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
