from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
OBSERVATION_STATUS_ABORTED: ObservationStatus
OBSERVATION_STATUS_COMPLETED: ObservationStatus
OBSERVATION_STATUS_FAILED: ObservationStatus
OBSERVATION_STATUS_RUNNING: ObservationStatus
OBSERVATION_STATUS_UNSPECIFIED: ObservationStatus
ROW_OP_DELETE: RowOp
ROW_OP_INSERT: RowOp
ROW_OP_UNSPECIFIED: RowOp
ROW_OP_UPDATE: RowOp
ROW_OP_UPSERT: RowOp
VALUE_KIND_BOOL: ValueKind
VALUE_KIND_BYTES: ValueKind
VALUE_KIND_ENUM: ValueKind
VALUE_KIND_INTEGER: ValueKind
VALUE_KIND_JSON: ValueKind
VALUE_KIND_NUMBER: ValueKind
VALUE_KIND_STRING: ValueKind
VALUE_KIND_UNSPECIFIED: ValueKind

class ColumnSchema(_message.Message):
    __slots__ = ["array", "enum_labels", "generated", "has_default", "kind", "name", "nullable", "type"]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    ENUM_LABELS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    HAS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    array: bool
    enum_labels: _containers.RepeatedScalarFieldContainer[str]
    generated: bool
    has_default: bool
    kind: ValueKind
    name: str
    nullable: bool
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., kind: _Optional[_Union[ValueKind, str]] = ..., array: bool = ..., nullable: bool = ..., has_default: bool = ..., generated: bool = ..., enum_labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ForeignKey(_message.Message):
    __slots__ = ["columns", "name", "references_columns", "references_table"]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_TABLE_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    name: str
    references_columns: _containers.RepeatedScalarFieldContainer[str]
    references_table: str
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., references_table: _Optional[str] = ..., references_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class InstrumentConfig(_message.Message):
    __slots__ = ["config", "id", "instrument", "observation_id", "recorded_at"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    config: _struct_pb2.Struct
    id: str
    instrument: str
    observation_id: str
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., instrument: _Optional[str] = ..., observation_id: _Optional[str] = ..., recorded_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ["instrument_config", "observation", "observation_update", "raw_data_file", "row"]
    INSTRUMENT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_UPDATE_FIELD_NUMBER: _ClassVar[int]
    RAW_DATA_FILE_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    instrument_config: InstrumentConfig
    observation: Observation
    observation_update: ObservationUpdate
    raw_data_file: RawDataFile
    row: Row
    def __init__(self, observation: _Optional[_Union[Observation, _Mapping]] = ..., observation_update: _Optional[_Union[ObservationUpdate, _Mapping]] = ..., instrument_config: _Optional[_Union[InstrumentConfig, _Mapping]] = ..., raw_data_file: _Optional[_Union[RawDataFile, _Mapping]] = ..., row: _Optional[_Union[Row, _Mapping]] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ["attributes", "end_time", "id", "instrument", "obs_unit", "source", "start_time", "status"]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    OBS_UNIT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    attributes: _struct_pb2.Struct
    end_time: _timestamp_pb2.Timestamp
    id: str
    instrument: str
    obs_unit: str
    source: str
    start_time: _timestamp_pb2.Timestamp
    status: ObservationStatus
    def __init__(self, id: _Optional[str] = ..., instrument: _Optional[str] = ..., source: _Optional[str] = ..., obs_unit: _Optional[str] = ..., status: _Optional[_Union[ObservationStatus, str]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ObservationUpdate(_message.Message):
    __slots__ = ["attributes", "end_time", "id", "status"]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    attributes: _struct_pb2.Struct
    end_time: _timestamp_pb2.Timestamp
    id: str
    status: ObservationStatus
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[ObservationStatus, str]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RawDataFile(_message.Message):
    __slots__ = ["checksum", "created_at", "id", "observation_id", "path", "size_bytes"]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    checksum: str
    created_at: _timestamp_pb2.Timestamp
    id: str
    observation_id: str
    path: str
    size_bytes: int
    def __init__(self, id: _Optional[str] = ..., observation_id: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., checksum: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ["op", "table", "values"]
    OP_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    op: RowOp
    table: str
    values: _struct_pb2.Struct
    def __init__(self, table: _Optional[str] = ..., op: _Optional[_Union[RowOp, str]] = ..., values: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ["read_at", "tables", "version"]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    read_at: _timestamp_pb2.Timestamp
    tables: _containers.RepeatedCompositeFieldContainer[TableSchema]
    version: str
    def __init__(self, tables: _Optional[_Iterable[_Union[TableSchema, _Mapping]]] = ..., version: _Optional[str] = ..., read_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TableSchema(_message.Message):
    __slots__ = ["columns", "foreign_keys", "name", "primary_key", "refused_reason"]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FOREIGN_KEYS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    REFUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    foreign_keys: _containers.RepeatedCompositeFieldContainer[ForeignKey]
    name: str
    primary_key: _containers.RepeatedScalarFieldContainer[str]
    refused_reason: str
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., primary_key: _Optional[_Iterable[str]] = ..., foreign_keys: _Optional[_Iterable[_Union[ForeignKey, _Mapping]]] = ..., refused_reason: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ["accepted_at", "edge_id", "epoch", "id", "mutations", "seq", "trace_context"]
    class TraceContextEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    accepted_at: _timestamp_pb2.Timestamp
    edge_id: str
    epoch: str
    id: str
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    seq: int
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ..., accepted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., edge_id: _Optional[str] = ..., epoch: _Optional[str] = ..., seq: _Optional[int] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ObservationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RowOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ValueKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
