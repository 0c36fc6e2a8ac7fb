import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hallgate_pb.v1 import kiosk_pb2 as _kiosk_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgencyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENCY_KIND_UNSPECIFIED: _ClassVar[AgencyKind]
    AGENCY_KIND_PUBLIC_SECURITY: _ClassVar[AgencyKind]
    AGENCY_KIND_PROCURATORATE: _ClassVar[AgencyKind]
    AGENCY_KIND_STATE_SECURITY: _ClassVar[AgencyKind]

class AgencyLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENCY_LEVEL_UNSPECIFIED: _ClassVar[AgencyLevel]
    AGENCY_LEVEL_NATIONAL: _ClassVar[AgencyLevel]
    AGENCY_LEVEL_PROVINCIAL: _ClassVar[AgencyLevel]
    AGENCY_LEVEL_PREFECTURE: _ClassVar[AgencyLevel]
    AGENCY_LEVEL_COUNTY: _ClassVar[AgencyLevel]
    AGENCY_LEVEL_TOWNSHIP: _ClassVar[AgencyLevel]

class DataCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_CATEGORY_UNSPECIFIED: _ClassVar[DataCategory]
    DATA_CATEGORY_SUBSCRIBER_INFO: _ClassVar[DataCategory]
    DATA_CATEGORY_CALL_DETAILS: _ClassVar[DataCategory]
    DATA_CATEGORY_COMMUNICATION_CONTENT: _ClassVar[DataCategory]

class RequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_STATE_UNSPECIFIED: _ClassVar[RequestState]
    REQUEST_STATE_AWAITING_APPROVAL: _ClassVar[RequestState]
    REQUEST_STATE_AWAITING_DISCLOSURE: _ClassVar[RequestState]
    REQUEST_STATE_DISCLOSING: _ClassVar[RequestState]
    REQUEST_STATE_DISCLOSED: _ClassVar[RequestState]
    REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE: _ClassVar[RequestState]
    REQUEST_STATE_REJECTED: _ClassVar[RequestState]
    REQUEST_STATE_INVALID: _ClassVar[RequestState]
    REQUEST_STATE_CANCELLED: _ClassVar[RequestState]
    REQUEST_STATE_EXPIRED: _ClassVar[RequestState]
AGENCY_KIND_UNSPECIFIED: AgencyKind
AGENCY_KIND_PUBLIC_SECURITY: AgencyKind
AGENCY_KIND_PROCURATORATE: AgencyKind
AGENCY_KIND_STATE_SECURITY: AgencyKind
AGENCY_LEVEL_UNSPECIFIED: AgencyLevel
AGENCY_LEVEL_NATIONAL: AgencyLevel
AGENCY_LEVEL_PROVINCIAL: AgencyLevel
AGENCY_LEVEL_PREFECTURE: AgencyLevel
AGENCY_LEVEL_COUNTY: AgencyLevel
AGENCY_LEVEL_TOWNSHIP: AgencyLevel
DATA_CATEGORY_UNSPECIFIED: DataCategory
DATA_CATEGORY_SUBSCRIBER_INFO: DataCategory
DATA_CATEGORY_CALL_DETAILS: DataCategory
DATA_CATEGORY_COMMUNICATION_CONTENT: DataCategory
REQUEST_STATE_UNSPECIFIED: RequestState
REQUEST_STATE_AWAITING_APPROVAL: RequestState
REQUEST_STATE_AWAITING_DISCLOSURE: RequestState
REQUEST_STATE_DISCLOSING: RequestState
REQUEST_STATE_DISCLOSED: RequestState
REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE: RequestState
REQUEST_STATE_REJECTED: RequestState
REQUEST_STATE_INVALID: RequestState
REQUEST_STATE_CANCELLED: RequestState
REQUEST_STATE_EXPIRED: RequestState

class Agency(_message.Message):
    __slots__ = ("kind", "name", "level")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    kind: AgencyKind
    name: str
    level: AgencyLevel
    def __init__(self, kind: _Optional[_Union[AgencyKind, str]] = ..., name: _Optional[str] = ..., level: _Optional[_Union[AgencyLevel, str]] = ...) -> None: ...

class Letter(_message.Message):
    __slots__ = ("reference", "date", "media_type", "content")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    reference: str
    date: str
    media_type: str
    content: bytes
    def __init__(self, reference: _Optional[str] = ..., date: _Optional[str] = ..., media_type: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class LetterInfo(_message.Message):
    __slots__ = ("reference", "date", "media_type", "sha256", "size_bytes")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    reference: str
    date: str
    media_type: str
    sha256: str
    size_bytes: int
    def __init__(self, reference: _Optional[str] = ..., date: _Optional[str] = ..., media_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class Officer(_message.Message):
    __slots__ = ("name", "badge_number")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BADGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    badge_number: str
    def __init__(self, name: _Optional[str] = ..., badge_number: _Optional[str] = ...) -> None: ...

class DataWindow(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RequestTransition(_message.Message):
    __slots__ = ("at", "from_state", "to_state", "actor_staff_id", "actor_role", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_STAFF_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    from_state: RequestState
    to_state: RequestState
    actor_staff_id: str
    actor_role: str
    reason: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_state: _Optional[_Union[RequestState, str]] = ..., to_state: _Optional[_Union[RequestState, str]] = ..., actor_staff_id: _Optional[str] = ..., actor_role: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SignedManifest(_message.Message):
    __slots__ = ("manifest_json", "signature", "key_id", "algorithm")
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    manifest_json: bytes
    signature: bytes
    key_id: str
    algorithm: str
    def __init__(self, manifest_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ...) -> None: ...

class LegalRequest(_message.Message):
    __slots__ = ("request_id", "state", "agency", "letter", "legal_basis", "case_number", "officers", "targets", "categories", "window", "registered_by", "registered_at", "approved_by", "approved_at", "approval_expires_at", "history", "manifest")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    LETTER_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFICERS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    state: RequestState
    agency: Agency
    letter: LetterInfo
    legal_basis: str
    case_number: str
    officers: _containers.RepeatedCompositeFieldContainer[Officer]
    targets: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    window: DataWindow
    registered_by: str
    registered_at: _timestamp_pb2.Timestamp
    approved_by: str
    approved_at: _timestamp_pb2.Timestamp
    approval_expires_at: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[RequestTransition]
    manifest: SignedManifest
    def __init__(self, request_id: _Optional[str] = ..., state: _Optional[_Union[RequestState, str]] = ..., agency: _Optional[_Union[Agency, _Mapping]] = ..., letter: _Optional[_Union[LetterInfo, _Mapping]] = ..., legal_basis: _Optional[str] = ..., case_number: _Optional[str] = ..., officers: _Optional[_Iterable[_Union[Officer, _Mapping]]] = ..., targets: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., window: _Optional[_Union[DataWindow, _Mapping]] = ..., registered_by: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approved_by: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approval_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[RequestTransition, _Mapping]]] = ..., manifest: _Optional[_Union[SignedManifest, _Mapping]] = ...) -> None: ...

class RegisterRequestRequest(_message.Message):
    __slots__ = ("agency", "letter", "legal_basis", "case_number", "officers", "targets", "categories", "window")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    LETTER_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFICERS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    letter: Letter
    legal_basis: str
    case_number: str
    officers: _containers.RepeatedCompositeFieldContainer[Officer]
    targets: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    window: DataWindow
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ..., letter: _Optional[_Union[Letter, _Mapping]] = ..., legal_basis: _Optional[str] = ..., case_number: _Optional[str] = ..., officers: _Optional[_Iterable[_Union[Officer, _Mapping]]] = ..., targets: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., window: _Optional[_Union[DataWindow, _Mapping]] = ...) -> None: ...

class RegisterRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...

class ApproveRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...

class RejectRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...

class MarkInvalidRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class MarkInvalidResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...

class CancelRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...

class FulfilRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason", "targets", "categories", "window")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    window: DataWindow
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., window: _Optional[_Union[DataWindow, _Mapping]] = ...) -> None: ...

class DeliveryHeader(_message.Message):
    __slots__ = ("request_id", "delivery_id", "case_number", "targets", "categories", "window")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    delivery_id: str
    case_number: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    window: DataWindow
    def __init__(self, request_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., case_number: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., window: _Optional[_Union[DataWindow, _Mapping]] = ...) -> None: ...

class SubscriberRecord(_message.Message):
    __slots__ = ("exists", "sim_changed_at", "ported_at", "owner_name", "document_type", "document_number", "birth_date", "sex", "province", "city", "district", "street", "plan_name", "account_status")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    SIM_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    PORTED_AT_FIELD_NUMBER: _ClassVar[int]
    OWNER_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    STREET_FIELD_NUMBER: _ClassVar[int]
    PLAN_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATUS_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    sim_changed_at: _timestamp_pb2.Timestamp
    ported_at: _timestamp_pb2.Timestamp
    owner_name: str
    document_type: str
    document_number: str
    birth_date: str
    sex: str
    province: str
    city: str
    district: str
    street: str
    plan_name: str
    account_status: str
    def __init__(self, exists: _Optional[bool] = ..., sim_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner_name: _Optional[str] = ..., document_type: _Optional[str] = ..., document_number: _Optional[str] = ..., birth_date: _Optional[str] = ..., sex: _Optional[str] = ..., province: _Optional[str] = ..., city: _Optional[str] = ..., district: _Optional[str] = ..., street: _Optional[str] = ..., plan_name: _Optional[str] = ..., account_status: _Optional[str] = ...) -> None: ...

class DeliveryRecords(_message.Message):
    __slots__ = ("target", "subscriber", "call_details")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    CALL_DETAILS_FIELD_NUMBER: _ClassVar[int]
    target: str
    subscriber: SubscriberRecord
    call_details: _containers.RepeatedCompositeFieldContainer[_kiosk_pb2.CallDetail]
    def __init__(self, target: _Optional[str] = ..., subscriber: _Optional[_Union[SubscriberRecord, _Mapping]] = ..., call_details: _Optional[_Iterable[_Union[_kiosk_pb2.CallDetail, _Mapping]]] = ...) -> None: ...

class FulfilRequestResponse(_message.Message):
    __slots__ = ("header", "records", "manifest")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    header: DeliveryHeader
    records: bytes
    manifest: SignedManifest
    def __init__(self, header: _Optional[_Union[DeliveryHeader, _Mapping]] = ..., records: _Optional[bytes] = ..., manifest: _Optional[_Union[SignedManifest, _Mapping]] = ...) -> None: ...

class ListRequestsRequest(_message.Message):
    __slots__ = ("state", "case_number", "agency_name", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: RequestState
    case_number: str
    agency_name: str
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[RequestState, str]] = ..., case_number: _Optional[str] = ..., agency_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRequestsResponse(_message.Message):
    __slots__ = ("requests", "next_page_token")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[LegalRequest]
    next_page_token: str
    def __init__(self, requests: _Optional[_Iterable[_Union[LegalRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRequestRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetLetterRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetLetterResponse(_message.Message):
    __slots__ = ("content", "media_type", "sha256")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    media_type: str
    sha256: str
    def __init__(self, content: _Optional[bytes] = ..., media_type: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class GetRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LegalRequest
    def __init__(self, request: _Optional[_Union[LegalRequest, _Mapping]] = ...) -> None: ...
