from chasqui.ops.v1 import ops_pb2 as _ops_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
RECORD_SOURCE_BUFFERED: RecordSource
RECORD_SOURCE_COMMITTED: RecordSource
RECORD_SOURCE_UNSPECIFIED: RecordSource
RECORD_SOURCE_VISIBLE: RecordSource
TRANSACTION_STATE_ACCEPTED: TransactionState
TRANSACTION_STATE_COMMITTED: TransactionState
TRANSACTION_STATE_OUTCOME_UNKNOWN: TransactionState
TRANSACTION_STATE_REJECTED: TransactionState
TRANSACTION_STATE_UNSPECIFIED: TransactionState
TRANSACTION_STATE_VISIBLE: TransactionState

class DeadLetter(_message.Message):
    __slots__ = ["reason", "rejected_at", "sqlstate", "transaction"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REJECTED_AT_FIELD_NUMBER: _ClassVar[int]
    SQLSTATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    reason: str
    rejected_at: _timestamp_pb2.Timestamp
    sqlstate: str
    transaction: _ops_pb2.Transaction
    def __init__(self, transaction: _Optional[_Union[_ops_pb2.Transaction, _Mapping]] = ..., reason: _Optional[str] = ..., sqlstate: _Optional[str] = ..., rejected_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DiscardDeadLetterRequest(_message.Message):
    __slots__ = ["transaction_id"]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...

class DiscardDeadLetterResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetDeadLetterRequest(_message.Message):
    __slots__ = ["transaction_id"]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...

class GetDeadLetterResponse(_message.Message):
    __slots__ = ["dead_letter"]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    dead_letter: DeadLetter
    def __init__(self, dead_letter: _Optional[_Union[DeadLetter, _Mapping]] = ...) -> None: ...

class GetObservationRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetObservationResponse(_message.Message):
    __slots__ = ["buffer_only", "observation"]
    BUFFER_ONLY_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    buffer_only: bool
    observation: ObservationView
    def __init__(self, observation: _Optional[_Union[ObservationView, _Mapping]] = ..., buffer_only: bool = ...) -> None: ...

class GetRowRequest(_message.Message):
    __slots__ = ["key", "table"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    key: _struct_pb2.Struct
    table: str
    def __init__(self, table: _Optional[str] = ..., key: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetRowResponse(_message.Message):
    __slots__ = ["buffer_only", "row"]
    BUFFER_ONLY_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    buffer_only: bool
    row: RowView
    def __init__(self, row: _Optional[_Union[RowView, _Mapping]] = ..., buffer_only: bool = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ["learned_at", "schema"]
    LEARNED_AT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    learned_at: _timestamp_pb2.Timestamp
    schema: _ops_pb2.Schema
    def __init__(self, schema: _Optional[_Union[_ops_pb2.Schema, _Mapping]] = ..., learned_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ["central_last_answer_at", "central_link", "central_lsn", "commit_rate_tx_per_second", "committed_through_seq", "dead_letters", "disk_free_bytes", "edge_id", "epoch", "forwarder_last_error", "forwarder_last_error_age_seconds", "forwarder_last_error_at", "forwarder_last_error_past", "forwarder_state", "last_accepted_seq", "last_commit_at", "oldest_pending_accepted_at", "oldest_pending_age_seconds", "queue_bytes", "queue_count", "queue_limit_bytes", "replica_lag_bytes", "replica_lag_seconds", "replica_replay_lsn", "replica_state"]
    CENTRAL_LAST_ANSWER_AT_FIELD_NUMBER: _ClassVar[int]
    CENTRAL_LINK_FIELD_NUMBER: _ClassVar[int]
    CENTRAL_LSN_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    COMMIT_RATE_TX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FORWARDER_LAST_ERROR_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FORWARDER_LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    FORWARDER_LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    FORWARDER_LAST_ERROR_PAST_FIELD_NUMBER: _ClassVar[int]
    FORWARDER_STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCEPTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_AT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICA_LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICA_LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_REPLAY_LSN_FIELD_NUMBER: _ClassVar[int]
    REPLICA_STATE_FIELD_NUMBER: _ClassVar[int]
    central_last_answer_at: _timestamp_pb2.Timestamp
    central_link: str
    central_lsn: str
    commit_rate_tx_per_second: float
    committed_through_seq: int
    dead_letters: int
    disk_free_bytes: int
    edge_id: str
    epoch: str
    forwarder_last_error: str
    forwarder_last_error_age_seconds: float
    forwarder_last_error_at: _timestamp_pb2.Timestamp
    forwarder_last_error_past: bool
    forwarder_state: str
    last_accepted_seq: int
    last_commit_at: _timestamp_pb2.Timestamp
    oldest_pending_accepted_at: _timestamp_pb2.Timestamp
    oldest_pending_age_seconds: float
    queue_bytes: int
    queue_count: int
    queue_limit_bytes: int
    replica_lag_bytes: int
    replica_lag_seconds: float
    replica_replay_lsn: str
    replica_state: str
    def __init__(self, edge_id: _Optional[str] = ..., epoch: _Optional[str] = ..., queue_count: _Optional[int] = ..., queue_bytes: _Optional[int] = ..., queue_limit_bytes: _Optional[int] = ..., oldest_pending_accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., oldest_pending_age_seconds: _Optional[float] = ..., forwarder_state: _Optional[str] = ..., forwarder_last_error: _Optional[str] = ..., last_commit_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., commit_rate_tx_per_second: _Optional[float] = ..., dead_letters: _Optional[int] = ..., last_accepted_seq: _Optional[int] = ..., committed_through_seq: _Optional[int] = ..., central_lsn: _Optional[str] = ..., replica_replay_lsn: _Optional[str] = ..., replica_lag_bytes: _Optional[int] = ..., replica_lag_seconds: _Optional[float] = ..., replica_state: _Optional[str] = ..., disk_free_bytes: _Optional[int] = ..., central_link: _Optional[str] = ..., central_last_answer_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., forwarder_last_error_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., forwarder_last_error_age_seconds: _Optional[float] = ..., forwarder_last_error_past: bool = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ["transaction_id"]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...

class GetTransactionResponse(_message.Message):
    __slots__ = ["transaction"]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: TransactionStatus
    def __init__(self, transaction: _Optional[_Union[TransactionStatus, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ["dead_letters", "next_page_token"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListObservationsRequest(_message.Message):
    __slots__ = ["instrument", "obs_unit", "page_size", "page_token", "start_after", "start_before", "status"]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    OBS_UNIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    START_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    instrument: str
    obs_unit: str
    page_size: int
    page_token: str
    start_after: _timestamp_pb2.Timestamp
    start_before: _timestamp_pb2.Timestamp
    status: _ops_pb2.ObservationStatus
    def __init__(self, instrument: _Optional[str] = ..., obs_unit: _Optional[str] = ..., status: _Optional[_Union[_ops_pb2.ObservationStatus, str]] = ..., start_after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., start_before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListObservationsResponse(_message.Message):
    __slots__ = ["buffer_only", "next_page_token", "observations"]
    BUFFER_ONLY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    buffer_only: bool
    next_page_token: str
    observations: _containers.RepeatedCompositeFieldContainer[ObservationView]
    def __init__(self, observations: _Optional[_Iterable[_Union[ObservationView, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., buffer_only: bool = ...) -> None: ...

class ListRowsRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "table", "where"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    table: str
    where: _struct_pb2.Struct
    def __init__(self, table: _Optional[str] = ..., where: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRowsResponse(_message.Message):
    __slots__ = ["buffer_only", "next_page_token", "rows"]
    BUFFER_ONLY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    buffer_only: bool
    next_page_token: str
    rows: _containers.RepeatedCompositeFieldContainer[RowView]
    def __init__(self, rows: _Optional[_Iterable[_Union[RowView, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., buffer_only: bool = ...) -> None: ...

class ObservationView(_message.Message):
    __slots__ = ["configs", "files", "observation", "source"]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[_ops_pb2.InstrumentConfig]
    files: _containers.RepeatedCompositeFieldContainer[_ops_pb2.RawDataFile]
    observation: _ops_pb2.Observation
    source: RecordSource
    def __init__(self, observation: _Optional[_Union[_ops_pb2.Observation, _Mapping]] = ..., source: _Optional[_Union[RecordSource, str]] = ..., files: _Optional[_Iterable[_Union[_ops_pb2.RawDataFile, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[_ops_pb2.InstrumentConfig, _Mapping]]] = ...) -> None: ...

class RetryDeadLetterRequest(_message.Message):
    __slots__ = ["edited", "transaction_id"]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    edited: _ops_pb2.Transaction
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ..., edited: _Optional[_Union[_ops_pb2.Transaction, _Mapping]] = ...) -> None: ...

class RetryDeadLetterResponse(_message.Message):
    __slots__ = ["result"]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: SubmitResult
    def __init__(self, result: _Optional[_Union[SubmitResult, _Mapping]] = ...) -> None: ...

class RowView(_message.Message):
    __slots__ = ["source", "table", "values"]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    source: RecordSource
    table: str
    values: _struct_pb2.Struct
    def __init__(self, table: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source: _Optional[_Union[RecordSource, str]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ["transactions"]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[_ops_pb2.Transaction]
    def __init__(self, transactions: _Optional[_Iterable[_Union[_ops_pb2.Transaction, _Mapping]]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ["results"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ["accepted_at", "duplicate", "record_ids", "seq", "state", "transaction_id"]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    accepted_at: _timestamp_pb2.Timestamp
    duplicate: bool
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    seq: int
    state: TransactionState
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ..., seq: _Optional[int] = ..., accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., record_ids: _Optional[_Iterable[str]] = ..., duplicate: bool = ..., state: _Optional[_Union[TransactionState, str]] = ...) -> None: ...

class TransactionStatus(_message.Message):
    __slots__ = ["accepted_at", "commit_lsn", "commit_lsn_value", "committed_at", "reject_reason", "seq", "sqlstate", "state", "transaction_id", "visible_at"]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMMIT_LSN_FIELD_NUMBER: _ClassVar[int]
    COMMIT_LSN_VALUE_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SQLSTATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_AT_FIELD_NUMBER: _ClassVar[int]
    accepted_at: _timestamp_pb2.Timestamp
    commit_lsn: str
    commit_lsn_value: int
    committed_at: _timestamp_pb2.Timestamp
    reject_reason: str
    seq: int
    sqlstate: str
    state: TransactionState
    transaction_id: str
    visible_at: _timestamp_pb2.Timestamp
    def __init__(self, transaction_id: _Optional[str] = ..., seq: _Optional[int] = ..., state: _Optional[_Union[TransactionState, str]] = ..., accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., committed_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., commit_lsn: _Optional[str] = ..., commit_lsn_value: _Optional[int] = ..., reject_reason: _Optional[str] = ..., sqlstate: _Optional[str] = ..., visible_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchTransactionsRequest(_message.Message):
    __slots__ = ["after_change", "transaction_ids"]
    AFTER_CHANGE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    after_change: int
    transaction_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, transaction_ids: _Optional[_Iterable[str]] = ..., after_change: _Optional[int] = ...) -> None: ...

class WatchTransactionsResponse(_message.Message):
    __slots__ = ["change", "transaction"]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    change: int
    transaction: TransactionStatus
    def __init__(self, change: _Optional[int] = ..., transaction: _Optional[_Union[TransactionStatus, _Mapping]] = ...) -> None: ...

class TransactionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RecordSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
