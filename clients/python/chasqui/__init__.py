"""Chasqui's Python client: instrument processes write observations, raw
data files and instrument configs, and rows of the site's own tables, to
their site's edge, which stores them durably and forwards them to
central's PostgreSQL.

    import chasqui
    with chasqui.Client("127.0.0.1:7444") as c:
        obs = c.start_observation("CAM1").record_ids[0]
        tx = c.finish_observation(obs).transaction_id
        print(c.wait(tx))  # COMMITTED, with its PostgreSQL LSN

Calls retry with the project's policy (:mod:`chasqui.policy`); transaction
and record ids are UUIDv7s (:mod:`chasqui.uuid7`) filled in before the first
attempt, so retries never store anything twice. :class:`AsyncClient` is the
asyncio twin of :class:`Client`. The generated messages are in
``chasqui.ops.v1.ops_pb2`` and ``chasqui.edge.v1.edge_pb2``.
"""

from ._base import DEFAULT_LOGGER_NAME, TransactionRejected
from .aio import AsyncClient
from .client import Client
from .edge.v1 import edge_pb2
from .ops.v1 import ops_pb2
from .policy import RetryBudget, RetryPolicy
from .records import delete_row, insert_row, row, row_values, update_row, upsert_row
from .tls import TLSFiles
from .uuid7 import UUIDv7Generator, uuid7, uuid7_str

__all__ = [
    "AsyncClient",
    "Client",
    "DEFAULT_LOGGER_NAME",
    "RetryBudget",
    "RetryPolicy",
    "TLSFiles",
    "TransactionRejected",
    "UUIDv7Generator",
    "delete_row",
    "edge_pb2",
    "insert_row",
    "ops_pb2",
    "row",
    "row_values",
    "update_row",
    "upsert_row",
    "uuid7",
    "uuid7_str",
]

__version__ = "0.1.0"
