import datetime

from google.protobuf import duration_pb2 as _duration_pb2
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

class RequestOneTimeCodeRequest(_message.Message):
    __slots__ = ("msisdn",)
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    def __init__(self, msisdn: _Optional[str] = ...) -> None: ...

class RequestOneTimeCodeResponse(_message.Message):
    __slots__ = ("code_valid_for", "resend_after")
    CODE_VALID_FOR_FIELD_NUMBER: _ClassVar[int]
    RESEND_AFTER_FIELD_NUMBER: _ClassVar[int]
    code_valid_for: _duration_pb2.Duration
    resend_after: _duration_pb2.Duration
    def __init__(self, code_valid_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resend_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("msisdn", "service_password", "one_time_code")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_CODE_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    service_password: str
    one_time_code: str
    def __init__(self, msisdn: _Optional[str] = ..., service_password: _Optional[str] = ..., one_time_code: _Optional[str] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("access_token", "idle_timeout", "expires_at")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    idle_timeout: _duration_pb2.Duration
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, access_token: _Optional[str] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCallDetailsRequest(_message.Message):
    __slots__ = ("access_token", "month")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    month: str
    def __init__(self, access_token: _Optional[str] = ..., month: _Optional[str] = ...) -> None: ...

class ListCallDetailsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[CallDetail]
    def __init__(self, records: _Optional[_Iterable[_Union[CallDetail, _Mapping]]] = ...) -> None: ...

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

class EndSessionRequest(_message.Message):
    __slots__ = ("access_token",)
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    def __init__(self, access_token: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAccessHistoryRequest(_message.Message):
    __slots__ = ("access_token",)
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    def __init__(self, access_token: _Optional[str] = ...) -> None: ...

class AccessRecord(_message.Message):
    __slots__ = ("time", "hall", "channel", "what", "outcome", "purpose")
    TIME_FIELD_NUMBER: _ClassVar[int]
    HALL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    hall: str
    channel: str
    what: str
    outcome: str
    purpose: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hall: _Optional[str] = ..., channel: _Optional[str] = ..., what: _Optional[str] = ..., outcome: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class ListAccessHistoryResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: AccessRecord
    def __init__(self, record: _Optional[_Union[AccessRecord, _Mapping]] = ...) -> None: ...
