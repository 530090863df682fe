r"""How a record document's state is kept at rest in ``record_states.state`` (schema V17).

A record's state is its full Yjs (v1) update. Stored as is, a three-field patient takes
about 340 bytes, most of it the same JSON shape and field names in every register entry.
At rest it is deflated with a preset dictionary of that shape (about 146 bytes: README,
Performance). Everything else stays plain Yjs: snapshot pages, ops, backups' exports and
every peer see exactly the bytes ``unpack_state`` returns, so older replicas sync as before.

Every reader and writer of ``record_states.state`` goes through this pair; nothing else
knows the stored form. A stored state is either

- the plain update, as every state was before V17 (and one deflating would not shrink), or
- ``\x81\x00`` then raw deflate (no zlib header or checksum: SQLCipher already
  authenticates every page) with ``_DICTIONARY`` as preset dictionary.

A Yjs update starts with its number of clients as a variable-length integer, which lib0
and yrs always write in its shortest form: a continuation byte followed by ``\x00`` never
starts one, so the two forms cannot be confused, and a state packed twice is not packed
again (V17 can meet states a newer replica's code already packed). Other ``\x8N\x00``
prefixes are left for later formats and refused with a clear error.

The dictionary is part of the format: a state stored with ``\x81\x00`` inflates only with
exactly these bytes, so it must never change. A better one would get a new prefix.

Snapshot pages may also carry states in their stored form, when the receiver says it reads
that form (the sync protocol's ``state_forms``, by the names in :data:`FORMS`): the server
then sends what it holds without inflating it, and the receiver keeps what it received
without deflating it again (``changes.store_records``), after inflating it to load and
check it. A receiver that does not ask is sent plain Yjs, as before.
"""

from __future__ import annotations

import zlib

from core.store.errors import StoreError

DEFLATED = b"\x81\x00"
# The stored forms a snapshot page may carry, by their names on the wire (never reused).
FORMS: dict[str, bytes] = {"deflate1": DEFLATED}

# The field names of every record type and the shape of a register entry as ``crdt``
# writes it (``(\x01\x01r<len>field/<16 hex>\x01w<len>{"a":author,"h":hlc,"s":[],"v":...}``).
# Deflate reaches back into the dictionary from its end, and nearer matches cost fewer
# bits: the rarest strings come first, the ones every record repeats last.
_DICTIONARY = (
    b'"addenda/"body/"signed_body/"signed_at/"author/"edited/"note/'
    b'"break_glass/"opened_at/"expires_at/"reviewed_by/"reviewed_at/'
    b'"relation/"object/"subject/"granted/"since/'
    b'"attachment/"filename/"media_type/"size/"sha256/"title/"date/"category/"blob_id/'
    b'"key_id/"added_by/"application/pdf"image/jpeg"'
    b'"observation/"code/"value/"unit/"observed_at/"entered_value/"entered_unit/"flag/'
    b'"encounter/"started_at/"appointment_id/"closed_at/"closed_by/'
    b'"appointment/"starts_at/"ends_at/"clinician/"arrived_at/"cancel_reason/"booked"'
    b'"user/"username/"full_name/"role/"verifier/"$argon2id$v=19$m=65536,t=3,p=4$'
    b'"must_change_password/"totp_secret/"staff_role/"other_roles/"other_roles_since/'
    b'"clinic/"name/"admin"nurse"'
    b'"medications/{"-":{"name":"strength":"dose":"route":"frequency":"start":"stop":'
    b'"prescriber":"stopped"'
    b'"problems/{"-":{"description":"code":"status":"active","onset":"resolved":'
    b'"encounter_id":null,'
    b'"allergies/{"-":{"substance":"reaction":"severity":"mild""moderate""severe"'
    b'"unknown"'
    b'"allergy_status/"merged_into/"merge_reason/"source/"duplicate_of/"patient_id/'
    b'"deleted/"active/"status/"reason/"male"}"female"}'
    b"(\x01\x01r\x14sex/\x01wG"
    b"(\x01\x01r\x14mrn/\x01wG"
    b"(\x01\x01r\x16phone/\x01wG"
    b"(\x01\x01r\x1bbirth_date/\x01wO"
    b"(\x01\x01r\x16given/\x01wJ"
    b"(\x01\x01r\x17family/\x01wL"
    b'(\x01\x01r\x1bcreated_at/\x01wb{"a":"admin","h":"1796489352200.000000.'
    b'","s":[],"v":"2026-12-05T16:49:12.196+00:00"}'
    b'(\x01\x01r\x14sex/0123456789abcdef\x01wG{"a":"'
    b'","h":"17964893522","s":[],"v":null}(\x01\x01r'
)


class StoredStateError(StoreError, ValueError):
    """A stored record state that is not in a form this version can read (a ValueError
    too: the readers that refuse a malformed state catch that)."""


def _prefix(raw: bytes) -> bytes | None:
    """The packed-form prefix a stored state starts with (None: a plain Yjs update)."""
    if len(raw) >= 2 and raw[0] & 0x80 and raw[1] == 0:
        return raw[:2]
    return None


def pack_state(plain: bytes) -> bytes:
    """The at-rest form of a record's plain Yjs state (a packed one is returned as is)."""
    if _prefix(plain) is not None:
        return plain
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
    packed = DEFLATED + deflate.compress(plain) + deflate.flush()
    return packed if len(packed) < len(plain) else plain


def unpack_state(stored: bytes | memoryview, limit: int | None = None) -> bytes:
    """The plain Yjs state of a stored ``record_states.state`` value. ``limit``: refuse
    (StoredStateError) a state that inflates to more bytes than this (one received from
    another replica: a few bytes of deflate can stand for a thousand times more)."""
    raw = bytes(stored)
    prefix = _prefix(raw)
    if prefix is None:
        if limit is not None and len(raw) > limit:
            raise StoredStateError(f"a record state is larger than {limit} bytes")
        return raw
    if prefix != DEFLATED:
        raise StoredStateError(
            f"a stored record state has the format {prefix.hex()}, which this version of "
            "Careline does not know (written by a newer version?)"
        )
    inflate = zlib.decompressobj(-15, _DICTIONARY)
    try:
        if limit is None:
            plain = inflate.decompress(raw[2:]) + inflate.flush()
        else:
            plain = inflate.decompress(raw[2:], limit + 1)
            if len(plain) > limit or inflate.unconsumed_tail:
                raise StoredStateError(f"a record state inflates to more than {limit} bytes")
    except zlib.error as exc:
        raise StoredStateError(f"a stored record state does not inflate: {exc}") from exc
    if not inflate.eof or inflate.unused_data:
        raise StoredStateError("a stored record state is cut short or has trailing bytes")
    return plain


def state_in_forms(stored: bytes | memoryview, forms: frozenset[str]) -> bytes:
    """A stored state as sent to a receiver that reads the stored ``forms`` (names of
    :data:`FORMS`) besides plain Yjs: as stored if it can read that, else inflated."""
    raw = bytes(stored)
    prefix = _prefix(raw)
    if prefix is None or any(FORMS.get(name) == prefix for name in forms):
        return raw
    return unpack_state(raw)
