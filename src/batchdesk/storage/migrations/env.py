"""Alembic environment: always run online, on the connection batchdesk hands over.

batchdesk never reads alembic.ini; `batchdesk.storage.migrations_runner` builds the Config and puts
an open SQLAlchemy Connection in `config.attributes["connection"]`.
"""

from alembic import context

from batchdesk.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
