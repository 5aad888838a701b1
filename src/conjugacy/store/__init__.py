"""On-disk trajectory store (Zarr v3); see :mod:`conjugacy.store._layout` (being split by concern)."""

from ._layout import (
    FORMAT_VERSION,
    LOCK_NAME,
    READABLE_FORMAT_VERSIONS,
    Damage,
    DamagedStoreError,
    StoreError,
    StoreSource,
    TrajectoryStore,
    VerifyReport,
    _package_version,
    select_names,
)

__all__ = [
    "FORMAT_VERSION",
    "LOCK_NAME",
    "READABLE_FORMAT_VERSIONS",
    "Damage",
    "DamagedStoreError",
    "StoreError",
    "TrajectoryStore",
    "VerifyReport",
    "select_names",
]
