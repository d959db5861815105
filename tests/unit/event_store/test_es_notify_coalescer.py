"""``NotifyCoalescer``'s decision rule (which append statement carries the NOTIFY), without a
database: the sends themselves are covered by the PostgreSQL integration tests."""

from __future__ import annotations

from cqrs_ddd_persistence_sqlalchemy.dialects.postgresql.notify import NotifyCoalescer


def test_a_lone_append_notifies_in_its_statement() -> None:
    n = NotifyCoalescer("ch", max_delay=3600.0)
    assert n.begin() is True


def test_overlapping_appends_leave_it_owed_until_the_slot_has_passed() -> None:
    n = NotifyCoalescer("ch", max_delay=3600.0)
    assert n.begin() is True  # alone
    assert n.begin() is False  # overlaps: nothing owed yet
    n.abandon()  # ended without notifying (its commit may have happened): owed
    assert n.begin() is False  # owed, but the last notification is recent
    n.max_delay = 0.0
    assert n.begin() is True  # owed and the slot has passed: this statement carries it
    assert n.begin() is False  # carried: nothing owed any more


def test_a_statement_that_carried_the_notification_but_failed_owes_it_again() -> None:
    n = NotifyCoalescer("ch", max_delay=0.0)
    n.begin()
    n.begin()
    n.abandon()  # owed
    assert n.begin() is True  # carries it...
    n.abandon()  # ...but failed (no row, no NOTIFY): owed again
    assert n.begin() is True
