import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventFilter(_message.Message):
    __slots__ = ("msisdn", "staff_id", "terminal", "hall", "method", "decision", "channel", "start_time", "end_time")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    STAFF_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    HALL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    staff_id: str
    terminal: str
    hall: str
    method: str
    decision: str
    channel: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, msisdn: _Optional[str] = ..., staff_id: _Optional[str] = ..., terminal: _Optional[str] = ..., hall: _Optional[str] = ..., method: _Optional[str] = ..., decision: _Optional[str] = ..., channel: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryEventsRequest(_message.Message):
    __slots__ = ("filter", "limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: EventFilter
    limit: int
    def __init__(self, filter: _Optional[_Union[EventFilter, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("seq", "id", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    id: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, seq: _Optional[int] = ..., id: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class QueryEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: AuditEvent
    def __init__(self, event: _Optional[_Union[AuditEvent, _Mapping]] = ...) -> None: ...

class VerifyChainRequest(_message.Message):
    __slots__ = ("start_seq", "end_seq")
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    END_SEQ_FIELD_NUMBER: _ClassVar[int]
    start_seq: int
    end_seq: int
    def __init__(self, start_seq: _Optional[int] = ..., end_seq: _Optional[int] = ...) -> None: ...

class VerifyChainResponse(_message.Message):
    __slots__ = ("ok", "checked", "first_bad_seq", "first_bad_id", "reason", "verified_from", "verified_position_rejected", "started_after_seq", "last_checked_seq", "checkpoint_seq", "verified_through_seq")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FROM_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_POSITION_REJECTED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checked: int
    first_bad_seq: int
    first_bad_id: str
    reason: str
    verified_from: str
    verified_position_rejected: str
    started_after_seq: int
    last_checked_seq: int
    checkpoint_seq: int
    verified_through_seq: int
    def __init__(self, ok: _Optional[bool] = ..., checked: _Optional[int] = ..., first_bad_seq: _Optional[int] = ..., first_bad_id: _Optional[str] = ..., reason: _Optional[str] = ..., verified_from: _Optional[str] = ..., verified_position_rejected: _Optional[str] = ..., started_after_seq: _Optional[int] = ..., last_checked_seq: _Optional[int] = ..., checkpoint_seq: _Optional[int] = ..., verified_through_seq: _Optional[int] = ...) -> None: ...

class ExportEventsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: EventFilter
    def __init__(self, filter: _Optional[_Union[EventFilter, _Mapping]] = ...) -> None: ...

class ExportEventsResponse(_message.Message):
    __slots__ = ("jsonl",)
    JSONL_FIELD_NUMBER: _ClassVar[int]
    jsonl: bytes
    def __init__(self, jsonl: _Optional[bytes] = ...) -> None: ...
