"""The status table's google.rpc details stay small enough for any client to read."""

from __future__ import annotations

from google.rpc import error_details_pb2

from gateway.domain.errors import InvalidArgument
from gateway.pipeline import outcome as status


def test_many_long_violations_fit_in_a_default_trailer() -> None:
    err = InvalidArgument([(f"officers[{i}].name" + "x" * 300, "must be " + "y" * 500) for i in range(151)])
    proto = status.to_status_proto(err)
    assert len(proto.SerializeToString()) < 8192 - 1024  # clients refuse trailers over 8 KiB by default
    bad = error_details_pb2.BadRequest()
    assert proto.details[1].Unpack(bad)
    shown = [(v.field, v.description) for v in bad.field_violations]
    assert len(shown) == status.MAX_VIOLATIONS + 1
    assert shown[0][0].startswith("officers[0].name") and len(shown[0][0]) == status.MAX_TEXT
    assert shown[-1] == ("", "and 131 more fields are invalid")


def test_a_few_violations_are_sent_whole() -> None:
    proto = status.to_status_proto(InvalidArgument([("msisdn", "must be 11 digits"), ("month", "is required")]))
    bad = error_details_pb2.BadRequest()
    assert proto.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("msisdn", "must be 11 digits"), ("month", "is required")]
