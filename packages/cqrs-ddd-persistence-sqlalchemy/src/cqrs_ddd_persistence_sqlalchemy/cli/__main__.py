"""``python -m cqrs_ddd_persistence_sqlalchemy.cli`` is ``cqrs-ddd-sqla``."""

from cqrs_ddd_persistence_sqlalchemy.cli import main

main()
