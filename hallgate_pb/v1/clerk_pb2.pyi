import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdDocumentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_DOCUMENT_TYPE_UNSPECIFIED: _ClassVar[IdDocumentType]
    ID_DOCUMENT_TYPE_RESIDENT_ID_CARD: _ClassVar[IdDocumentType]

class DocumentSex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_SEX_UNSPECIFIED: _ClassVar[DocumentSex]
    DOCUMENT_SEX_FEMALE: _ClassVar[DocumentSex]
    DOCUMENT_SEX_MALE: _ClassVar[DocumentSex]

class SessionPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_PURPOSE_UNSPECIFIED: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_PASSWORD_RESET: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_PLAN_CHANGE: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_BILL_ENQUIRY: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_SIM_REPLACEMENT: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_COMPLAINT: _ClassVar[SessionPurpose]
    SESSION_PURPOSE_OTHER: _ClassVar[SessionPurpose]

class CodeDeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODE_DELIVERY_STATE_UNSPECIFIED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_NONE: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_QUEUED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_SUBMITTED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_DELIVERED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_UNDELIVERABLE: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_EXPIRED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_FAILED: _ClassVar[CodeDeliveryState]
    CODE_DELIVERY_STATE_NO_RECEIPT: _ClassVar[CodeDeliveryState]
ID_DOCUMENT_TYPE_UNSPECIFIED: IdDocumentType
ID_DOCUMENT_TYPE_RESIDENT_ID_CARD: IdDocumentType
DOCUMENT_SEX_UNSPECIFIED: DocumentSex
DOCUMENT_SEX_FEMALE: DocumentSex
DOCUMENT_SEX_MALE: DocumentSex
SESSION_PURPOSE_UNSPECIFIED: SessionPurpose
SESSION_PURPOSE_PASSWORD_RESET: SessionPurpose
SESSION_PURPOSE_PLAN_CHANGE: SessionPurpose
SESSION_PURPOSE_BILL_ENQUIRY: SessionPurpose
SESSION_PURPOSE_SIM_REPLACEMENT: SessionPurpose
SESSION_PURPOSE_COMPLAINT: SessionPurpose
SESSION_PURPOSE_OTHER: SessionPurpose
CODE_DELIVERY_STATE_UNSPECIFIED: CodeDeliveryState
CODE_DELIVERY_STATE_NONE: CodeDeliveryState
CODE_DELIVERY_STATE_QUEUED: CodeDeliveryState
CODE_DELIVERY_STATE_SUBMITTED: CodeDeliveryState
CODE_DELIVERY_STATE_DELIVERED: CodeDeliveryState
CODE_DELIVERY_STATE_UNDELIVERABLE: CodeDeliveryState
CODE_DELIVERY_STATE_EXPIRED: CodeDeliveryState
CODE_DELIVERY_STATE_FAILED: CodeDeliveryState
CODE_DELIVERY_STATE_NO_RECEIPT: CodeDeliveryState

class RequestCustomerCodeRequest(_message.Message):
    __slots__ = ("msisdn",)
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    def __init__(self, msisdn: _Optional[str] = ...) -> None: ...

class RequestCustomerCodeResponse(_message.Message):
    __slots__ = ("code_valid_for",)
    CODE_VALID_FOR_FIELD_NUMBER: _ClassVar[int]
    code_valid_for: _duration_pb2.Duration
    def __init__(self, code_valid_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IdDocumentProof(_message.Message):
    __slots__ = ("document_type", "document_number", "name", "birth_date", "sex")
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    document_type: IdDocumentType
    document_number: str
    name: str
    birth_date: str
    sex: DocumentSex
    def __init__(self, document_type: _Optional[_Union[IdDocumentType, str]] = ..., document_number: _Optional[str] = ..., name: _Optional[str] = ..., birth_date: _Optional[str] = ..., sex: _Optional[_Union[DocumentSex, str]] = ...) -> None: ...

class PasswordAndCodeProof(_message.Message):
    __slots__ = ("service_password", "one_time_code")
    SERVICE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_CODE_FIELD_NUMBER: _ClassVar[int]
    service_password: str
    one_time_code: str
    def __init__(self, service_password: _Optional[str] = ..., one_time_code: _Optional[str] = ...) -> None: ...

class OpenCustomerSessionRequest(_message.Message):
    __slots__ = ("msisdn", "id_document", "password_and_code", "purpose", "reason")
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    ID_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_AND_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    msisdn: str
    id_document: IdDocumentProof
    password_and_code: PasswordAndCodeProof
    purpose: SessionPurpose
    reason: str
    def __init__(self, msisdn: _Optional[str] = ..., id_document: _Optional[_Union[IdDocumentProof, _Mapping]] = ..., password_and_code: _Optional[_Union[PasswordAndCodeProof, _Mapping]] = ..., purpose: _Optional[_Union[SessionPurpose, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class OpenCustomerSessionResponse(_message.Message):
    __slots__ = ("customer_session", "idle_timeout", "purpose")
    CUSTOMER_SESSION_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    customer_session: str
    idle_timeout: _duration_pb2.Duration
    purpose: SessionPurpose
    def __init__(self, customer_session: _Optional[str] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., purpose: _Optional[_Union[SessionPurpose, str]] = ...) -> None: ...

class GetCustomerProfileRequest(_message.Message):
    __slots__ = ("customer_session",)
    CUSTOMER_SESSION_FIELD_NUMBER: _ClassVar[int]
    customer_session: str
    def __init__(self, customer_session: _Optional[str] = ...) -> None: ...

class GetCustomerProfileResponse(_message.Message):
    __slots__ = ("msisdn_masked", "name_masked", "document_number_masked", "address_district", "plan_name", "account_status", "proved_by", "purpose")
    MSISDN_MASKED_FIELD_NUMBER: _ClassVar[int]
    NAME_MASKED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_MASKED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_DISTRICT_FIELD_NUMBER: _ClassVar[int]
    PLAN_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVED_BY_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    msisdn_masked: str
    name_masked: str
    document_number_masked: str
    address_district: str
    plan_name: str
    account_status: str
    proved_by: str
    purpose: SessionPurpose
    def __init__(self, msisdn_masked: _Optional[str] = ..., name_masked: _Optional[str] = ..., document_number_masked: _Optional[str] = ..., address_district: _Optional[str] = ..., plan_name: _Optional[str] = ..., account_status: _Optional[str] = ..., proved_by: _Optional[str] = ..., purpose: _Optional[_Union[SessionPurpose, str]] = ...) -> None: ...

class ResetServicePasswordRequest(_message.Message):
    __slots__ = ("customer_session", "new_service_password")
    CUSTOMER_SESSION_FIELD_NUMBER: _ClassVar[int]
    NEW_SERVICE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    customer_session: str
    new_service_password: str
    def __init__(self, customer_session: _Optional[str] = ..., new_service_password: _Optional[str] = ...) -> None: ...

class ResetServicePasswordResponse(_message.Message):
    __slots__ = ("next_step",)
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    next_step: str
    def __init__(self, next_step: _Optional[str] = ...) -> None: ...

class CloseCustomerSessionRequest(_message.Message):
    __slots__ = ("customer_session",)
    CUSTOMER_SESSION_FIELD_NUMBER: _ClassVar[int]
    customer_session: str
    def __init__(self, customer_session: _Optional[str] = ...) -> None: ...

class CloseCustomerSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCodeDeliveryRequest(_message.Message):
    __slots__ = ("customer_session",)
    CUSTOMER_SESSION_FIELD_NUMBER: _ClassVar[int]
    customer_session: str
    def __init__(self, customer_session: _Optional[str] = ...) -> None: ...

class GetCodeDeliveryResponse(_message.Message):
    __slots__ = ("state", "queued_at", "updated_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    state: CodeDeliveryState
    queued_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[CodeDeliveryState, str]] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
