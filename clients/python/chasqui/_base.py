"""What the sync and asyncio clients share: settings, credentials, the
requests their helpers build."""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import grpc

from . import records
from ._attempts import Attempts
from .edge.v1 import edge_pb2
from .ops.v1 import ops_pb2
from .policy import RetryBudget, RetryPolicy
from .tls import TLSFiles, is_loopback

#: The logger every attempt is logged to unless the client is given another.
DEFAULT_LOGGER_NAME = "chasqui"

#: Transaction states in the order a transaction reaches them.
_ORDER = {
    edge_pb2.TRANSACTION_STATE_ACCEPTED: 1,
    edge_pb2.TRANSACTION_STATE_COMMITTED: 2,
    edge_pb2.TRANSACTION_STATE_VISIBLE: 3,
}


class TransactionRejected(Exception):
    """Central refused the transaction (it is a dead letter at the edge).

    Attributes:
        status: the transaction's status, with reject_reason and sqlstate.
    """

    def __init__(self, status: edge_pb2.TransactionStatus) -> None:
        super().__init__(
            f"chasqui: transaction {status.transaction_id} rejected: {status.reject_reason}"
            + (f" (SQLSTATE {status.sqlstate})" if status.sqlstate else "")
        )
        self.status = status


def reached(status: edge_pb2.TransactionStatus, state: "edge_pb2.TransactionState") -> bool:
    """Whether the transaction has come as far as state.

    Raises:
        TransactionRejected: it was rejected, so it never will.
    """
    if status.state == edge_pb2.TRANSACTION_STATE_REJECTED:
        raise TransactionRejected(status)
    return _ORDER.get(status.state, 0) >= _ORDER.get(state, 99)


class _Base:
    """Settings shared by Client and AsyncClient."""

    def __init__(
        self,
        target: str,
        *,
        tls: Optional[TLSFiles] = None,
        token: Optional[str] = None,
        policy: Optional[RetryPolicy] = None,
        logger: Optional[logging.Logger] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self.policy = policy if policy is not None else RetryPolicy()
        self.budget = RetryBudget(self.policy.retry_budget, self.policy.retry_burst)
        self.logger = logger if logger is not None else logging.getLogger(DEFAULT_LOGGER_NAME)
        self._rand = rand
        if token and tls is None and not is_loopback(target):
            raise ValueError("chasqui: a bearer token travels only over TLS (or to this machine): give tls")
        self._metadata: Tuple[Tuple[str, str], ...] = (("authorization", "Bearer " + token),) if token else ()
        self._credentials = tls.credentials() if tls is not None else None
        self._options: List[Tuple[str, Any]] = self.policy.channel_options() + list(channel_options)

    def _attempts(self, method: str, timeout: Optional[float]) -> Attempts:
        return Attempts(method, self.policy, self.budget, self.logger, timeout, self._metadata, self._rand)

    @staticmethod
    def _submit_request(txs: Sequence[ops_pb2.Transaction]) -> edge_pb2.SubmitRequest:
        if not txs:
            raise ValueError("chasqui: submit needs at least one transaction")
        for tx in txs:
            records.fill_ids(tx)
        return edge_pb2.SubmitRequest(transactions=txs)

    @staticmethod
    def _get_row_request(table: str, key: Mapping[str, Any]) -> edge_pb2.GetRowRequest:
        if not key:
            raise ValueError(f"chasqui: reading a row of {table} needs its primary key")
        req = edge_pb2.GetRowRequest(table=table)
        req.key.update(records.row(table, key).values)
        return req

    @staticmethod
    def _list_rows_request(
        table: str, where: Optional[Mapping[str, Any]], page_size: int, page_token: str
    ) -> edge_pb2.ListRowsRequest:
        req = edge_pb2.ListRowsRequest(table=table, page_size=page_size, page_token=page_token)
        if where:
            req.where.update(records.row(table, where).values)
        return req

    @staticmethod
    def _list_request(
        instrument: str,
        obs_unit: str,
        status: "ops_pb2.ObservationStatus",
        start_after: Optional[records.TimeLike],
        start_before: Optional[records.TimeLike],
        page_size: int,
        page_token: str,
    ) -> edge_pb2.ListObservationsRequest:
        req = edge_pb2.ListObservationsRequest(
            instrument=instrument, obs_unit=obs_unit, status=status, page_size=page_size, page_token=page_token
        )
        if start_after is not None:
            req.start_after.CopyFrom(records._timestamp(start_after))
        if start_before is not None:
            req.start_before.CopyFrom(records._timestamp(start_before))
        return req

