"""Fenced leases: one holder at a time of a named role (leader election, singleton workers)."""

from cqrs_ddd_persistence_sqlalchemy.leases.lease import Lease as Lease

__all__ = ["Lease"]
