from chasqui.ops.v1 import ops_pb2 as _ops_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetObservationRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetObservationResponse(_message.Message):
    __slots__ = ["observation"]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    observation: ObservationRecord
    def __init__(self, observation: _Optional[_Union[ObservationRecord, _Mapping]] = ...) -> None: ...

class ListObservationsRequest(_message.Message):
    __slots__ = ["ids", "instrument", "obs_unit", "page_size", "page_token", "start_after", "start_before", "status"]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    OBS_UNIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    START_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    instrument: str
    obs_unit: str
    page_size: int
    page_token: str
    start_after: _timestamp_pb2.Timestamp
    start_before: _timestamp_pb2.Timestamp
    status: _ops_pb2.ObservationStatus
    def __init__(self, instrument: _Optional[str] = ..., obs_unit: _Optional[str] = ..., status: _Optional[_Union[_ops_pb2.ObservationStatus, str]] = ..., start_after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., start_before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListObservationsResponse(_message.Message):
    __slots__ = ["next_page_token", "observations"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    observations: _containers.RepeatedCompositeFieldContainer[ObservationRecord]
    def __init__(self, observations: _Optional[_Iterable[_Union[ObservationRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRowsRequest(_message.Message):
    __slots__ = ["keys", "page_size", "page_token", "table", "where"]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    page_size: int
    page_token: str
    table: str
    where: _struct_pb2.Struct
    def __init__(self, table: _Optional[str] = ..., where: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRowsResponse(_message.Message):
    __slots__ = ["next_page_token", "rows"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ObservationRecord(_message.Message):
    __slots__ = ["configs", "files", "observation"]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[_ops_pb2.InstrumentConfig]
    files: _containers.RepeatedCompositeFieldContainer[_ops_pb2.RawDataFile]
    observation: _ops_pb2.Observation
    def __init__(self, observation: _Optional[_Union[_ops_pb2.Observation, _Mapping]] = ..., files: _Optional[_Iterable[_Union[_ops_pb2.RawDataFile, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[_ops_pb2.InstrumentConfig, _Mapping]]] = ...) -> None: ...
