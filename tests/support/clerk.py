"""What a clerk types at the counter: the owner's ID document as read from the card."""

from __future__ import annotations

from typing import Any

from hallgate_pb.v1 import clerk_pb2


def id_card(owner: Any, **changes: object) -> clerk_pb2.IdDocumentProof:
    """The owner's resident ID card (an owner of the billing simulator's data) as the clerk reads
    it, with `changes` misread."""
    fields: dict[str, object] = {
        "document_type": clerk_pb2.ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, "document_number": owner.document_number,
        "name": owner.name, "birth_date": owner.birth_date,
        "sex": clerk_pb2.DOCUMENT_SEX_MALE if owner.sex == "male" else clerk_pb2.DOCUMENT_SEX_FEMALE}
    fields.update(changes)
    return clerk_pb2.IdDocumentProof(**fields)  # type: ignore[arg-type]
