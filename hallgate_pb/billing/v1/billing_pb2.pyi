import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_DIRECTION_UNSPECIFIED: _ClassVar[CallDirection]
    CALL_DIRECTION_OUTGOING: _ClassVar[CallDirection]
    CALL_DIRECTION_INCOMING: _ClassVar[CallDirection]

class CallKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_KIND_UNSPECIFIED: _ClassVar[CallKind]
    CALL_KIND_VOICE: _ClassVar[CallKind]
    CALL_KIND_SMS: _ClassVar[CallKind]
    CALL_KIND_DATA: _ClassVar[CallKind]
CALL_DIRECTION_UNSPECIFIED: CallDirection
CALL_DIRECTION_OUTGOING: CallDirection
CALL_DIRECTION_INCOMING: CallDirection
CALL_KIND_UNSPECIFIED: CallKind
CALL_KIND_VOICE: CallKind
CALL_KIND_SMS: CallKind
CALL_KIND_DATA: CallKind

class VerifyServicePasswordRequest(_message.Message):
    __slots__ = ("msisdn", "service_password")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    service_password: str
    def __init__(self, msisdn: _Optional[str] = ..., service_password: _Optional[str] = ...) -> None: ...

class VerifyServicePasswordResponse(_message.Message):
    __slots__ = ("valid",)
    VALID_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    def __init__(self, valid: _Optional[bool] = ...) -> None: ...

class GetSubscriberRequest(_message.Message):
    __slots__ = ("msisdn",)
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    def __init__(self, msisdn: _Optional[str] = ...) -> None: ...

class GetSubscriberResponse(_message.Message):
    __slots__ = ("exists", "sim_changed_at", "ported_at")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    SIM_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    PORTED_AT_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    sim_changed_at: _timestamp_pb2.Timestamp
    ported_at: _timestamp_pb2.Timestamp
    def __init__(self, exists: _Optional[bool] = ..., sim_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCallDetailsRequest(_message.Message):
    __slots__ = ("msisdn", "month", "page_size", "page_token")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    month: str
    page_size: int
    page_token: str
    def __init__(self, msisdn: _Optional[str] = ..., month: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCallDetailsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[CallDetail]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[CallDetail, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CallDetail(_message.Message):
    __slots__ = ("start_time", "direction", "other_party", "duration_seconds", "kind", "volume_bytes", "charge_fen")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    OTHER_PARTY_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VOLUME_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHARGE_FEN_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    direction: CallDirection
    other_party: str
    duration_seconds: int
    kind: CallKind
    volume_bytes: int
    charge_fen: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., direction: _Optional[_Union[CallDirection, str]] = ..., other_party: _Optional[str] = ..., duration_seconds: _Optional[int] = ..., kind: _Optional[_Union[CallKind, str]] = ..., volume_bytes: _Optional[int] = ..., charge_fen: _Optional[int] = ...) -> None: ...
