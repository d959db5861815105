"""Snapshots: the record, the store port and the strategies deciding when to take one."""

from cqrs_ddd_advanced_core.snapshots.model import ISnapshotStore as ISnapshotStore
from cqrs_ddd_advanced_core.snapshots.model import Snapshot as Snapshot
from cqrs_ddd_advanced_core.snapshots.strategy import EveryNEvents as EveryNEvents
from cqrs_ddd_advanced_core.snapshots.strategy import NeverSnapshot as NeverSnapshot
from cqrs_ddd_advanced_core.snapshots.strategy import SnapshotStrategy as SnapshotStrategy
