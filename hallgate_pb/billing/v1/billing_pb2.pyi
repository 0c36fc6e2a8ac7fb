import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_TYPE_UNSPECIFIED: _ClassVar[DocumentType]
    DOCUMENT_TYPE_RESIDENT_ID_CARD: _ClassVar[DocumentType]
    DOCUMENT_TYPE_PASSPORT: _ClassVar[DocumentType]

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]

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
DOCUMENT_TYPE_UNSPECIFIED: DocumentType
DOCUMENT_TYPE_RESIDENT_ID_CARD: DocumentType
DOCUMENT_TYPE_PASSPORT: DocumentType
SEX_UNSPECIFIED: Sex
SEX_FEMALE: Sex
SEX_MALE: Sex
CALL_DIRECTION_UNSPECIFIED: CallDirection
CALL_DIRECTION_OUTGOING: CallDirection
CALL_DIRECTION_INCOMING: CallDirection
CALL_KIND_UNSPECIFIED: CallKind
CALL_KIND_VOICE: CallKind
CALL_KIND_SMS: CallKind
CALL_KIND_DATA: CallKind

class VerifyOwnerDocumentRequest(_message.Message):
    __slots__ = ("msisdn", "document_type", "document_number", "name")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    document_type: DocumentType
    document_number: str
    name: str
    def __init__(self, msisdn: _Optional[str] = ..., document_type: _Optional[_Union[DocumentType, str]] = ..., document_number: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class VerifyOwnerDocumentResponse(_message.Message):
    __slots__ = ("match",)
    MATCH_FIELD_NUMBER: _ClassVar[int]
    match: bool
    def __init__(self, match: _Optional[bool] = ...) -> None: ...

class GetCustomerProfileRequest(_message.Message):
    __slots__ = ("msisdn",)
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    def __init__(self, msisdn: _Optional[str] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("province", "city", "district", "street")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    STREET_FIELD_NUMBER: _ClassVar[int]
    province: str
    city: str
    district: str
    street: str
    def __init__(self, province: _Optional[str] = ..., city: _Optional[str] = ..., district: _Optional[str] = ..., street: _Optional[str] = ...) -> None: ...

class GetCustomerProfileResponse(_message.Message):
    __slots__ = ("exists", "name", "document_type", "document_number", "birth_date", "sex", "address", "plan_name", "account_status", "opened_at", "iccid", "imsi")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PLAN_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATUS_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ICCID_FIELD_NUMBER: _ClassVar[int]
    IMSI_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    name: str
    document_type: DocumentType
    document_number: str
    birth_date: str
    sex: Sex
    address: Address
    plan_name: str
    account_status: str
    opened_at: _timestamp_pb2.Timestamp
    iccid: str
    imsi: str
    def __init__(self, exists: _Optional[bool] = ..., name: _Optional[str] = ..., document_type: _Optional[_Union[DocumentType, str]] = ..., document_number: _Optional[str] = ..., birth_date: _Optional[str] = ..., sex: _Optional[_Union[Sex, str]] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., plan_name: _Optional[str] = ..., account_status: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., iccid: _Optional[str] = ..., imsi: _Optional[str] = ...) -> None: ...

class SetServicePasswordRequest(_message.Message):
    __slots__ = ("msisdn", "new_service_password")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    NEW_SERVICE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    new_service_password: str
    def __init__(self, msisdn: _Optional[str] = ..., new_service_password: _Optional[str] = ...) -> None: ...

class SetServicePasswordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

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
