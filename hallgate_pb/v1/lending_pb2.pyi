import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_KIND_UNSPECIFIED: _ClassVar[DocumentKind]
    DOCUMENT_KIND_CONTRACT: _ClassVar[DocumentKind]
    DOCUMENT_KIND_ID_COPY: _ClassVar[DocumentKind]
    DOCUMENT_KIND_APPLICATION: _ClassVar[DocumentKind]

class LoanState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_STATE_UNSPECIFIED: _ClassVar[LoanState]
    LOAN_STATE_REQUESTED: _ClassVar[LoanState]
    LOAN_STATE_APPROVED: _ClassVar[LoanState]
    LOAN_STATE_REJECTED: _ClassVar[LoanState]
    LOAN_STATE_OUT: _ClassVar[LoanState]
    LOAN_STATE_RETURNED: _ClassVar[LoanState]
    LOAN_STATE_CANCELLED: _ClassVar[LoanState]
DOCUMENT_KIND_UNSPECIFIED: DocumentKind
DOCUMENT_KIND_CONTRACT: DocumentKind
DOCUMENT_KIND_ID_COPY: DocumentKind
DOCUMENT_KIND_APPLICATION: DocumentKind
LOAN_STATE_UNSPECIFIED: LoanState
LOAN_STATE_REQUESTED: LoanState
LOAN_STATE_APPROVED: LoanState
LOAN_STATE_REJECTED: LoanState
LOAN_STATE_OUT: LoanState
LOAN_STATE_RETURNED: LoanState
LOAN_STATE_CANCELLED: LoanState

class Document(_message.Message):
    __slots__ = ("archive_id", "kind", "hall", "description", "registered_by", "registered_at")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HALL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    kind: DocumentKind
    hall: str
    description: str
    registered_by: str
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, archive_id: _Optional[str] = ..., kind: _Optional[_Union[DocumentKind, str]] = ..., hall: _Optional[str] = ..., description: _Optional[str] = ..., registered_by: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoanTransition(_message.Message):
    __slots__ = ("at", "from_state", "to_state", "actor_staff_id", "actor_role", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_STAFF_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    from_state: LoanState
    to_state: LoanState
    actor_staff_id: str
    actor_role: str
    reason: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_state: _Optional[_Union[LoanState, str]] = ..., to_state: _Optional[_Union[LoanState, str]] = ..., actor_staff_id: _Optional[str] = ..., actor_role: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Loan(_message.Message):
    __slots__ = ("loan_id", "archive_id", "hall", "state", "borrower", "reason", "requested_at", "due_at", "decided_by", "decided_at", "handed_out_by", "handed_out_at", "returned_to", "returned_at", "overdue", "history")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    HALL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BORROWER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    HANDED_OUT_BY_FIELD_NUMBER: _ClassVar[int]
    HANDED_OUT_AT_FIELD_NUMBER: _ClassVar[int]
    RETURNED_TO_FIELD_NUMBER: _ClassVar[int]
    RETURNED_AT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    archive_id: str
    hall: str
    state: LoanState
    borrower: str
    reason: str
    requested_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    handed_out_by: str
    handed_out_at: _timestamp_pb2.Timestamp
    returned_to: str
    returned_at: _timestamp_pb2.Timestamp
    overdue: bool
    history: _containers.RepeatedCompositeFieldContainer[LoanTransition]
    def __init__(self, loan_id: _Optional[str] = ..., archive_id: _Optional[str] = ..., hall: _Optional[str] = ..., state: _Optional[_Union[LoanState, str]] = ..., borrower: _Optional[str] = ..., reason: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., handed_out_by: _Optional[str] = ..., handed_out_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., returned_to: _Optional[str] = ..., returned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., history: _Optional[_Iterable[_Union[LoanTransition, _Mapping]]] = ...) -> None: ...

class RegisterDocumentRequest(_message.Message):
    __slots__ = ("archive_id", "kind", "hall", "description")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HALL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    kind: DocumentKind
    hall: str
    description: str
    def __init__(self, archive_id: _Optional[str] = ..., kind: _Optional[_Union[DocumentKind, str]] = ..., hall: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RegisterDocumentResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: Document
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class RequestLoanRequest(_message.Message):
    __slots__ = ("archive_id", "reason", "due_at")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    reason: str
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, archive_id: _Optional[str] = ..., reason: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RequestLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class ApproveLoanRequest(_message.Message):
    __slots__ = ("loan_id", "reason")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    reason: str
    def __init__(self, loan_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class RejectLoanRequest(_message.Message):
    __slots__ = ("loan_id", "reason")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    reason: str
    def __init__(self, loan_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class CancelLoanRequest(_message.Message):
    __slots__ = ("loan_id", "reason")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    reason: str
    def __init__(self, loan_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class HandOutRequest(_message.Message):
    __slots__ = ("loan_id",)
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    def __init__(self, loan_id: _Optional[str] = ...) -> None: ...

class HandOutResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class RecordReturnRequest(_message.Message):
    __slots__ = ("loan_id",)
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    def __init__(self, loan_id: _Optional[str] = ...) -> None: ...

class RecordReturnResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: Loan
    def __init__(self, loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("archive_id",)
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    def __init__(self, archive_id: _Optional[str] = ...) -> None: ...

class GetDocumentResponse(_message.Message):
    __slots__ = ("document", "on_shelf", "current_loan")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    ON_SHELF_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOAN_FIELD_NUMBER: _ClassVar[int]
    document: Document
    on_shelf: bool
    current_loan: Loan
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., on_shelf: _Optional[bool] = ..., current_loan: _Optional[_Union[Loan, _Mapping]] = ...) -> None: ...

class ListLoansRequest(_message.Message):
    __slots__ = ("holder_staff_id", "state", "overdue_only", "page_size", "page_token")
    HOLDER_STAFF_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    holder_staff_id: str
    state: LoanState
    overdue_only: bool
    page_size: int
    page_token: str
    def __init__(self, holder_staff_id: _Optional[str] = ..., state: _Optional[_Union[LoanState, str]] = ..., overdue_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLoansResponse(_message.Message):
    __slots__ = ("loans", "next_page_token")
    LOANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    loans: _containers.RepeatedCompositeFieldContainer[Loan]
    next_page_token: str
    def __init__(self, loans: _Optional[_Iterable[_Union[Loan, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
