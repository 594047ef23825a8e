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
    __slots__ = ["instrument_config", "observation", "observation_update", "raw_data_file"]
    INSTRUMENT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_UPDATE_FIELD_NUMBER: _ClassVar[int]
    RAW_DATA_FILE_FIELD_NUMBER: _ClassVar[int]
    instrument_config: InstrumentConfig
    observation: Observation
    observation_update: ObservationUpdate
    raw_data_file: RawDataFile
    def __init__(self, observation: _Optional[_Union[Observation, _Mapping]] = ..., observation_update: _Optional[_Union[ObservationUpdate, _Mapping]] = ..., instrument_config: _Optional[_Union[InstrumentConfig, _Mapping]] = ..., raw_data_file: _Optional[_Union[RawDataFile, _Mapping]] = ...) -> None: ...

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
