"""The jepa store: what is computed once and read by every later step (``DESIGN.md``, jepa).

* :mod:`jepa.store.corpus`: :class:`CorpusIndex`, the SQLite index of the de-duplicated, split
  corpus (functions, repositories, splits, static properties).
* :mod:`jepa.store.states`: :class:`StateStore`, teacher states in content-addressed safetensors
  shards with an SQLite index of shard offsets, keyed by the function's text.

Both raise :class:`StoreError` (exit 2) for a missing, truncated, corrupt or foreign file, naming
the file and the command that rebuilds it.
"""

from jepa.store.corpus import (
    SCHEMA_VERSION,
    CorpusIndex,
    StoreError,
    config_json,
    rebuild_command,
    text_sha256,
)
from jepa.store.states import StateSpec, StateStore, function_key

__all__ = ["SCHEMA_VERSION", "CorpusIndex", "StateSpec", "StateStore", "StoreError",
           "config_json", "function_key", "rebuild_command", "text_sha256"]
