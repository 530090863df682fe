"""DocumentReference: a clinical note (its text, author, visit; a signed note is ``final``
with its signer and signing time, and its addenda follow as further content), or an
attached file's metadata (name, type, size, SHA-256; the file itself is not in the bundle).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.documentreference import (
    DocumentReference,
    DocumentReferenceContent,
    DocumentReferenceContext,
)

from core.records.fhir.common import (
    LOINC,
    FhirError,
    as_utc,
    code_in,
    concept,
    partial,
    ref,
    reference_text,
    staff,
    staff_name,
    utc_time,
)
from core.records.notes import Note

NOTE_TYPE = concept("Progress note", LOINC, "11506-3")
ATTACHMENT_TYPE = concept("Attached file")
ATTACHMENT_URL = "urn:careline:attachment:sha256:"
_ADDENDUM = "Addendum"


def _text(body: str, title: str | None = None, when: str | None = None) -> DocumentReferenceContent:
    data = base64.b64encode(body.encode()).decode()
    return DocumentReferenceContent(
        attachment=Attachment(
            contentType="text/plain; charset=utf-8",
            data=partial(data),  # the library takes the base64 text, and decodes it
            title=title,
            creation=utc_time(when),
        )
    )


def note_to_fhir(note: Note) -> DocumentReference:
    """A note as a DocumentReference (``final`` once signed, else ``preliminary``)."""
    signed = note.signed_at is not None
    content = [_text(note.body)]
    content += [_text(a.body, _ADDENDUM, a.recorded_at) for a in note.addenda]
    return DocumentReference(
        id=note.id,
        status="current",
        docStatus="final" if signed else "preliminary",
        type=NOTE_TYPE,
        subject=ref("Patient", note.patient_id),
        author=[a for a in (staff(note.author),) if a is not None] or None,
        authenticator=staff(note.signed_by or note.author) if signed else None,
        date=utc_time(note.signed_at),
        content=content,
        context=(
            DocumentReferenceContext(encounter=[ref("Encounter", note.encounter_id)])
            if note.encounter_id
            else None
        ),
    )


def attachment_to_fhir(row: dict[str, object]) -> DocumentReference:
    """An attachment's metadata record as a DocumentReference pointing at the file by its
    SHA-256 (FHIR's own ``hash`` element is SHA-1, which Careline does not keep)."""
    return DocumentReference(
        id=str(row["id"]),
        status="current",
        type=ATTACHMENT_TYPE,
        subject=ref("Patient", str(row["patient_id"])),
        content=[
            DocumentReferenceContent(
                attachment=Attachment(
                    contentType=str(row["media_type"]),
                    url=ATTACHMENT_URL + str(row["sha256"]),
                    size=int(str(row["size"])),
                    title=str(row["filename"]),
                    creation=utc_time(str(row["created_at"]) if row.get("created_at") else None),
                )
            )
        ],
    )


def is_attachment(resource: DocumentReference) -> bool:
    """A reference to a file (not a note's own text)."""
    return any(
        str(c.attachment.url or "").startswith(ATTACHMENT_URL) for c in resource.content or []
    )


@dataclass(frozen=True)
class NoteFields:
    """A note's text, author, signing, addenda and visit (as written). The source's
    author is display text only: the note's author in Careline is the importing person
    (a user name from another system may be a different person's here)."""

    body: str
    source_author: str | None
    signed_at: str | None
    addenda: tuple[str, ...]
    encounter: str | None


def _decoded(content: DocumentReferenceContent, where: str) -> str:
    attachment = content.attachment
    if attachment.data is None:
        raise FhirError(f"{where}.content.attachment.data", "a note's text must be in the bundle")
    data = attachment.data  # the library decodes the base64 as it parses
    try:
        raw = data if isinstance(data, bytes) else base64.b64decode(str(data))
        return raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise FhirError(f"{where}.content.attachment.data", "is not UTF-8 text") from None


def note_from_fhir(resource: DocumentReference, where: str) -> NoteFields:
    """A note from a DocumentReference whose content is text."""
    contents = list(resource.content or [])
    main = [c for c in contents if c.attachment.title != _ADDENDUM]
    if not main:
        raise FhirError(f"{where}.content", "a note needs its text")
    body = _decoded(main[0], where)
    addenda = tuple(_decoded(c, where) for c in contents if c.attachment.title == _ADDENDUM)
    source_author = staff_name(resource.author[0]) if resource.author else None
    signed = resource.docStatus in ("final", "amended")
    signed_at = (as_utc(resource.date) or "") if signed else None
    encounter = None
    if resource.context is not None and resource.context.encounter:
        encounter = reference_text(resource.context.encounter[0])
    return NoteFields(body, source_author, signed_at, addenda, encounter)


def is_note(resource: DocumentReference) -> bool:
    """A progress note (by its LOINC type), or any text document."""
    if code_in(resource.type, LOINC) == "11506-3":
        return True
    return not is_attachment(resource)
