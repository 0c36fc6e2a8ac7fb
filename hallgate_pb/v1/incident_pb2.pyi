import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_KIND_UNSPECIFIED: _ClassVar[ActorKind]
    ACTOR_KIND_STAFF: _ClassVar[ActorKind]
    ACTOR_KIND_TERMINAL: _ClassVar[ActorKind]
    ACTOR_KIND_HALL: _ClassVar[ActorKind]

class IncidentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCIDENT_STATE_UNSPECIFIED: _ClassVar[IncidentState]
    INCIDENT_STATE_REPORTED: _ClassVar[IncidentState]
    INCIDENT_STATE_CONTAINED: _ClassVar[IncidentState]
    INCIDENT_STATE_NOTIFIED: _ClassVar[IncidentState]
    INCIDENT_STATE_CLOSED: _ClassVar[IncidentState]

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_KIND_UNSPECIFIED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_LAW_ENFORCEMENT: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_CUSTOMERS: _ClassVar[NotificationKind]
ACTOR_KIND_UNSPECIFIED: ActorKind
ACTOR_KIND_STAFF: ActorKind
ACTOR_KIND_TERMINAL: ActorKind
ACTOR_KIND_HALL: ActorKind
INCIDENT_STATE_UNSPECIFIED: IncidentState
INCIDENT_STATE_REPORTED: IncidentState
INCIDENT_STATE_CONTAINED: IncidentState
INCIDENT_STATE_NOTIFIED: IncidentState
INCIDENT_STATE_CLOSED: IncidentState
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
NOTIFICATION_KIND_LAW_ENFORCEMENT: NotificationKind
NOTIFICATION_KIND_CUSTOMERS: NotificationKind

class Suspect(_message.Message):
    __slots__ = ("kind", "id", "start", "end")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    kind: ActorKind
    id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[ActorKind, str]] = ..., id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportIncidentRequest(_message.Message):
    __slots__ = ("summary", "suspect")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    summary: str
    suspect: Suspect
    def __init__(self, summary: _Optional[str] = ..., suspect: _Optional[_Union[Suspect, _Mapping]] = ...) -> None: ...

class ReportIncidentResponse(_message.Message):
    __slots__ = ("incident_id",)
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    def __init__(self, incident_id: _Optional[str] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("incident_id",)
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    def __init__(self, incident_id: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("state", "overdue_only", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: IncidentState
    overdue_only: bool
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[IncidentState, str]] = ..., overdue_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents", "next_page_token")
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    next_page_token: str
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RemediationStep(_message.Message):
    __slots__ = ("text", "by", "at")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    text: str
    by: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, text: _Optional[str] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("kind", "at", "reference", "recorded_by", "delay_customers_until")
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    DELAY_CUSTOMERS_UNTIL_FIELD_NUMBER: _ClassVar[int]
    kind: NotificationKind
    at: _timestamp_pb2.Timestamp
    reference: str
    recorded_by: str
    delay_customers_until: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[NotificationKind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference: _Optional[str] = ..., recorded_by: _Optional[str] = ..., delay_customers_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("from_state", "to_state", "by", "at", "reason")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_state: IncidentState
    to_state: IncidentState
    by: str
    at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, from_state: _Optional[_Union[IncidentState, str]] = ..., to_state: _Optional[_Union[IncidentState, str]] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class Deadlines(_message.Message):
    __slots__ = ("law_enforcement_due", "customers_from", "law_enforcement_overdue", "customers_overdue")
    LAW_ENFORCEMENT_DUE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FROM_FIELD_NUMBER: _ClassVar[int]
    LAW_ENFORCEMENT_OVERDUE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_OVERDUE_FIELD_NUMBER: _ClassVar[int]
    law_enforcement_due: _timestamp_pb2.Timestamp
    customers_from: _timestamp_pb2.Timestamp
    law_enforcement_overdue: bool
    customers_overdue: bool
    def __init__(self, law_enforcement_due: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customers_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., law_enforcement_overdue: _Optional[bool] = ..., customers_overdue: _Optional[bool] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("incident_id", "state", "summary", "suspect", "reported_by", "reporter_role", "reported_at", "determined_at", "steps", "notifications", "history", "deadlines", "closed_at")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ROLE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    DETERMINED_AT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DEADLINES_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    state: IncidentState
    summary: str
    suspect: Suspect
    reported_by: str
    reporter_role: str
    reported_at: _timestamp_pb2.Timestamp
    determined_at: _timestamp_pb2.Timestamp
    steps: _containers.RepeatedCompositeFieldContainer[RemediationStep]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    history: _containers.RepeatedCompositeFieldContainer[StateChange]
    deadlines: Deadlines
    closed_at: _timestamp_pb2.Timestamp
    def __init__(self, incident_id: _Optional[str] = ..., state: _Optional[_Union[IncidentState, str]] = ..., summary: _Optional[str] = ..., suspect: _Optional[_Union[Suspect, _Mapping]] = ..., reported_by: _Optional[str] = ..., reporter_role: _Optional[str] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., determined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[RemediationStep, _Mapping]]] = ..., notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[StateChange, _Mapping]]] = ..., deadlines: _Optional[_Union[Deadlines, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddRemediationStepRequest(_message.Message):
    __slots__ = ("incident_id", "text")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    text: str
    def __init__(self, incident_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TransitionRequest(_message.Message):
    __slots__ = ("incident_id", "to_state", "determined_at", "reason")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    DETERMINED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    to_state: IncidentState
    determined_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, incident_id: _Optional[str] = ..., to_state: _Optional[_Union[IncidentState, str]] = ..., determined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordNotificationRequest(_message.Message):
    __slots__ = ("incident_id", "kind", "at", "reference", "delay_customers_until")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DELAY_CUSTOMERS_UNTIL_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    kind: NotificationKind
    at: _timestamp_pb2.Timestamp
    reference: str
    delay_customers_until: _timestamp_pb2.Timestamp
    def __init__(self, incident_id: _Optional[str] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference: _Optional[str] = ..., delay_customers_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAffectedRequest(_message.Message):
    __slots__ = ("incident_id", "page_size", "page_token")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    page_size: int
    page_token: str
    def __init__(self, incident_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AffectedSubscriber(_message.Message):
    __slots__ = ("subscriber_ref", "masked", "first_touch", "last_touch", "events")
    SUBSCRIBER_REF_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOUCH_FIELD_NUMBER: _ClassVar[int]
    LAST_TOUCH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    subscriber_ref: str
    masked: str
    first_touch: _timestamp_pb2.Timestamp
    last_touch: _timestamp_pb2.Timestamp
    events: int
    def __init__(self, subscriber_ref: _Optional[str] = ..., masked: _Optional[str] = ..., first_touch: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_touch: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., events: _Optional[int] = ...) -> None: ...

class ListAffectedResponse(_message.Message):
    __slots__ = ("subscribers", "next_page_token", "total", "events_read")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_READ_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[AffectedSubscriber]
    next_page_token: str
    total: int
    events_read: int
    def __init__(self, subscribers: _Optional[_Iterable[_Union[AffectedSubscriber, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ..., events_read: _Optional[int] = ...) -> None: ...

class RevealNumbersRequest(_message.Message):
    __slots__ = ("incident_id", "subscriber_refs")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_REFS_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    subscriber_refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, incident_id: _Optional[str] = ..., subscriber_refs: _Optional[_Iterable[str]] = ...) -> None: ...

class RevealedNumber(_message.Message):
    __slots__ = ("subscriber_ref", "msisdn")
    SUBSCRIBER_REF_FIELD_NUMBER: _ClassVar[int]
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    subscriber_ref: str
    msisdn: str
    def __init__(self, subscriber_ref: _Optional[str] = ..., msisdn: _Optional[str] = ...) -> None: ...

class RevealNumbersResponse(_message.Message):
    __slots__ = ("numbers",)
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedCompositeFieldContainer[RevealedNumber]
    def __init__(self, numbers: _Optional[_Iterable[_Union[RevealedNumber, _Mapping]]] = ...) -> None: ...
