"""The cloud side of sync-v1, deployable: a receiver on SQLite or PostgreSQL.

- :mod:`~cloud_sync.receiver.core` — the rules (apply a batch exactly once,
  answer; the per-box change feed), over
- :mod:`~cloud_sync.receiver.storage` — SQLite for one process, PostgreSQL
  (psycopg 3 and its pool) for any number of processes, with
- :mod:`~cloud_sync.receiver.schema` — the tables and migrations of both, and
- :mod:`~cloud_sync.receiver.oms` — the hook through which an OMS applies each
  event in the receiver's transaction, and its reference implementation;
- :mod:`~cloud_sync.receiver.service` — the aiohttp service (signatures both
  ways, secrets with rotation, health, metrics), run by ``pickedge
  cloud-receiver``;
- :mod:`~cloud_sync.receiver.listfeed` — the simulator's in-memory feed.

docs/cloud-receiver.md is the operator's guide.
"""

from cloud_sync.receiver.core import Answer, BatchError, ChangeError, Receiver
from cloud_sync.receiver.listfeed import ChangeFeed

__all__ = ["Answer", "BatchError", "ChangeError", "ChangeFeed", "Receiver"]
