"""The HDF5 CAM store: schema, crash-safe sharded writer, lazy reader (see docs/store.md)."""

from pseudolabel.store.reader import CamStore, check_store_file
from pseudolabel.store.schema import FORMAT_VERSION, CamRecord, StoreHeader
from pseudolabel.store.writer import (
    ShardPlan,
    ShardWriter,
    check_output,
    merge_shards,
    write_store,
)

__all__ = [
    "FORMAT_VERSION",
    "CamRecord",
    "CamStore",
    "ShardPlan",
    "ShardWriter",
    "StoreHeader",
    "check_output",
    "check_store_file",
    "merge_shards",
    "write_store",
]
