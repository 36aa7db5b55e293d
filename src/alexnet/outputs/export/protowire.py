"""The protocol-buffer wire format, read without the protobuf package or a schema.

A message is a sequence of records ``tag payload``; the tag is a varint
``field_number << 3 | wire_type``:

    wire type 0  varint        int32/int64/uint32/uint64/bool/enum (7 bits a byte, low first)
    wire type 1  fixed64       double (8 bytes, little-endian)
    wire type 2  length-delim  varint length, then the bytes: string, bytes, a nested
                               message, or a packed repeated field (values back to back)
    wire type 5  fixed32       float (4 bytes, little-endian)

(protobuf.dev/programming-guides/encoding). :func:`parse` splits one level of a
message into ``{field_number: [(wire_type, payload), ...]}`` without copying:
length-delimited payloads are ``memoryview`` slices of the input, so a nested
message is parsed only when asked for and a 150 MB packed float array is never
copied until :func:`floats` hands it to NumPy. An unpacked repeated float field
(one tag per value) is gathered into one payload with NumPy, not value by value.
The typed readers below take the schema's type from the caller: what the field
numbers mean is the caller's business (``caffe_proto`` for Caffe's messages).

Hostile input costs time linear in its size and memory bounded by it: fields the caller
does not ``keep`` are checked and skipped, every kept record is charged to a
:class:`Budget` (a Python object per record is ~100x a 2-byte record), the readers that
return a list stop at a stated count, and :func:`records` reads a file's top level
record by record, so a file that goes wrong is refused where it goes wrong, not after
all of it has been read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import BinaryIO

import numpy as np

__all__ = [
    "FIXED32",
    "FIXED64",
    "LEN",
    "VARINT",
    "Budget",
    "Message",
    "WireError",
    "doubles",
    "floats",
    "last_float",
    "last_int",
    "messages",
    "parse",
    "read_varint",
    "records",
    "string",
    "varints",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}
Message = dict[int, list[tuple[int, "int | memoryview"]]]


class WireError(ValueError):
    """The bytes are not a well-formed protocol-buffer message (truncated or corrupt)."""


class Budget:
    """How many more records the readers may keep (over all the messages of one file)."""

    def __init__(self, records: int) -> None:
        self.limit = self.left = records

    def take(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise WireError(f"more than {self.limit:,} records, more than this reader keeps")


def read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` -> (value as an unsigned int, position after it)."""
    value = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"truncated: a varint runs past byte {end}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"corrupt: a varint longer than 10 bytes ends at byte {pos}")


def _fixed_run(buf: memoryview, pos: int, end: int, tag: bytes, size: int) -> int:
    """How many records ``tag + size bytes`` follow back to back from ``pos`` (>= 1):
    checked with NumPy in growing chunks, so a run costs O(its length)."""
    stride, t = len(tag) + size, np.frombuffer(tag, np.uint8)
    n, chunk = 1, 256
    while True:
        avail = (end - pos) // stride - n
        if avail <= 0:
            return n
        m = min(avail, chunk)
        rows = np.frombuffer(buf, np.uint8, m * stride, pos + n * stride).reshape(m, stride)
        same = (rows[:, : len(tag)] == t).all(axis=1)
        if not same.all():
            return n + int(np.argmin(same))
        n, chunk = n + m, chunk * 4


def _skip_or_keep(number: int, keep: Collection[int] | None, budget: Budget | None) -> bool:
    if keep is not None and number not in keep:
        return False
    if budget is not None:
        budget.take()
    return True


def parse(
    data: bytes | memoryview,
    base: int = 0,
    *,
    keep: Collection[int] | None = None,
    budget: Budget | None = None,
) -> Message:
    """One level of a message: field number -> [(wire type, payload)] in file order.

    Payloads: an int for varints; a memoryview for length-delimited fields and for
    fixed32/fixed64 values (4 or 8 bytes per value; a run of the same unpacked field
    is one payload). ``base``: the message's offset in the file, for error messages.
    ``keep``: the field numbers to return (the others are checked and skipped);
    ``budget``: charged one per record returned.
    """
    buf = memoryview(data).cast("B")
    out: Message = {}
    pos, end = 0, len(buf)
    while pos < end:
        start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"corrupt: field number 0 at byte {base + start}")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            payload: int | memoryview = value
        elif wire == LEN:
            length, pos = read_varint(buf, pos, end)
            if length > end - pos:
                raise WireError(
                    f"truncated: field {number} at byte {base + start} claims {length:,} bytes, "
                    f"{end - pos:,} remain"
                )
            payload, pos = buf[pos : pos + length], pos + length
        elif wire in _FIXED_SIZE:
            size, tag = _FIXED_SIZE[wire], bytes(buf[start:pos])
            if size > end - pos:
                raise WireError(f"truncated: field {number} at byte {base + start}")
            n = 1
            if buf[pos + size : pos + size + len(tag)] == tag:  # an unpacked repeated field
                n = _fixed_run(buf, start, end, tag, size)
            if n == 1:
                payload = buf[pos : pos + size]
            elif keep is not None and number not in keep:
                payload = buf[pos:pos]  # skipped: not gathered
            else:
                rows = np.frombuffer(buf, np.uint8, n * (len(tag) + size), start)
                payload = memoryview(rows.reshape(n, -1)[:, len(tag) :].tobytes())
            pos = start + n * (len(tag) + size)
        else:  # 3/4: proto1 groups, which no Caffe message uses
            raise WireError(f"corrupt: wire type {wire} (field {number}) at byte {base + start}")
        if _skip_or_keep(number, keep, budget):
            out.setdefault(number, []).append((wire, payload))
    return out


def _stream_varint(f: BinaryIO, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = f.read(1) if pos < end else b""
        if not byte:
            raise WireError(f"truncated: a varint runs past byte {end}")
        pos += 1
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"corrupt: a varint longer than 10 bytes ends at byte {pos}")


def records(
    f: BinaryIO,
    size: int,
    *,
    keep: Collection[int],
    check_first: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, int, int | memoryview | None, int]]:
    """The top level of the message filling the open file ``f`` (``size`` bytes from its
    current position), one record at a time: (field number, wire type, payload, offset).

    Each record is checked before the next byte is read, so a caller that stops at the
    first record it does not accept reads no further. Payloads as :func:`parse`'s (each
    length-delimited one its own bytes); ``None`` for the payloads of fields not in
    ``keep``, which are skipped without being read. ``check_first(field number, wire
    type)`` is called on the first record's tag before anything else is read."""
    pos = 0
    while pos < size:
        start = pos
        key, pos = _stream_varint(f, pos, size)
        number, wire = key >> 3, key & 7
        if start == 0 and check_first is not None:
            check_first(number, wire)
        if number == 0:
            raise WireError(f"corrupt: field number 0 at byte {start}")
        payload: int | memoryview | None = None
        if wire == VARINT:
            payload, pos = _stream_varint(f, pos, size)
        elif wire == LEN or wire in _FIXED_SIZE:
            if wire == LEN:
                length, pos = _stream_varint(f, pos, size)
            else:
                length = _FIXED_SIZE[wire]
            if length > size - pos:
                raise WireError(
                    f"truncated: field {number} at byte {start} claims {length:,} bytes, "
                    f"{size - pos:,} remain"
                )
            if number in keep:
                data = f.read(length)
                if len(data) != length:  # the file shrank while being read
                    raise WireError(f"truncated: field {number} at byte {start}")
                payload = memoryview(data)
            else:
                f.seek(length, 1)
            pos += length
        else:
            raise WireError(f"corrupt: wire type {wire} (field {number}) at byte {start}")
        yield number, wire, payload, start


def _payloads(msg: Message, field: int, wires: Iterable[int]) -> list:
    return [p for w, p in msg.get(field, ()) if w in wires]


def _varints(msg: Message, field: int) -> Iterator[int]:
    for w, p in msg.get(field, ()):
        if w == VARINT:
            yield p
        elif w == LEN:
            pos = 0
            while pos < len(p):
                v, pos = read_varint(p, pos, len(p))
                yield v


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def varints(
    msg: Message, field: int, *, signed: bool = False, at_most: int | None = None
) -> list[int]:
    """A repeated integer field, packed or not (int64's negatives when ``signed``);
    with ``at_most``, no more than ``at_most + 1`` values are read (the caller tells
    "too many" from the length)."""
    values: list[int] = []
    for v in _varints(msg, field):
        values.append(_signed(v) if signed else v)
        if at_most is not None and len(values) > at_most:
            break
    return values


def last_int(msg: Message, field: int, default: int, *, signed: bool = False) -> int:
    """An optional integer/bool/enum field: its last value (protobuf's rule), else ``default``."""
    last = None
    for last in _varints(msg, field):  # noqa: B007 (the last one is wanted)
        pass
    if last is None:
        return default
    return _signed(last) if signed else last


def _numbers(msg: Message, field: int, wire: int, dtype: str) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    parts = []
    for p in _payloads(msg, field, (LEN, wire)):
        if len(p) % size:
            kind = "float" if size == 4 else "double"
            raise WireError(
                f"field {field}: a packed {kind} field of {len(p):,} bytes, "
                f"not a multiple of {size}"
            )
        parts.append(np.frombuffer(p, dtype))
    if not parts:
        return np.zeros(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def floats(msg: Message, field: int) -> np.ndarray:
    """A repeated float field, packed or not: a read-only float32 view (no copy when packed
    once)."""
    return _numbers(msg, field, FIXED32, "<f4")


def doubles(msg: Message, field: int) -> np.ndarray:
    """A repeated double field, packed or not (float64)."""
    return _numbers(msg, field, FIXED64, "<f8")


def last_float(msg: Message, field: int, default: float) -> float:
    """An optional float field: its last value, rounded to the shortest decimal that is
    the same float32 (a file's ``alpha: 0.0001`` reads 0.0001, not 9.99999974738e-05)."""
    values = floats(msg, field)
    return float(str(values[-1])) if len(values) else default


def string(msg: Message, field: int, default: str = "") -> str:
    """An optional string field (UTF-8; bad bytes replaced)."""
    values = _payloads(msg, field, (LEN,))
    return bytes(values[-1]).decode("utf-8", "replace") if values else default


def messages(msg: Message, field: int) -> list[memoryview]:
    """The payloads of a repeated message field, each to :func:`parse` when needed."""
    return _payloads(msg, field, (LEN,))
