"""The ``cqrs-ddd-sqla`` command line: demo, schema, outbox, jobs, projections, sagas, health.

Run ``cqrs-ddd-sqla --help``; every command reads ``--database-url`` or ``CQRS_DATABASE_URL``.
"""

from cqrs_ddd_persistence_sqlalchemy.cli.app import app as app
from cqrs_ddd_persistence_sqlalchemy.cli.app import main as main
