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
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "FIXED32",
    "FIXED64",
    "LEN",
    "VARINT",
    "Message",
    "WireError",
    "doubles",
    "floats",
    "last_float",
    "last_int",
    "messages",
    "parse",
    "read_varint",
    "string",
    "varints",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}
Message = dict[int, list[tuple[int, "int | memoryview"]]]


class WireError(ValueError):
    """The bytes are not a well-formed protocol-buffer message (truncated or corrupt)."""


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


def parse(data: bytes | memoryview, base: int = 0) -> Message:
    """One level of a message: field number -> [(wire type, payload)] in file order.

    Payloads: an int for varints; a memoryview for length-delimited fields and for
    fixed32/fixed64 values (4 or 8 bytes per value; a run of the same unpacked field
    is one payload). ``base``: the message's offset in the file, for error messages.
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
            else:
                rows = np.frombuffer(buf, np.uint8, n * (len(tag) + size), start)
                payload = memoryview(rows.reshape(n, -1)[:, len(tag) :].tobytes())
            pos = start + n * (len(tag) + size)
        else:  # 3/4: proto1 groups, which no Caffe message uses
            raise WireError(f"corrupt: wire type {wire} (field {number}) at byte {base + start}")
        out.setdefault(number, []).append((wire, payload))
    return out


def _payloads(msg: Message, field: int, wires: Iterable[int]) -> list:
    return [p for w, p in msg.get(field, ()) if w in wires]


def varints(msg: Message, field: int, *, signed: bool = False) -> list[int]:
    """A repeated integer field, packed or not (int64's negatives when ``signed``)."""
    values: list[int] = []
    for w, p in msg.get(field, ()):
        if w == VARINT:
            values.append(p)
        elif w == LEN:
            pos = 0
            while pos < len(p):
                v, pos = read_varint(p, pos, len(p))
                values.append(v)
    if signed:
        values = [v - (1 << 64) if v >= 1 << 63 else v for v in values]
    return values


def last_int(msg: Message, field: int, default: int, *, signed: bool = False) -> int:
    """An optional integer/bool/enum field: its last value (protobuf's rule), else ``default``."""
    values = varints(msg, field, signed=signed)
    return values[-1] if values else default


def _numbers(msg: Message, field: int, wire: int, dtype: str) -> np.ndarray:
    parts = [np.frombuffer(p, dtype) for p in _payloads(msg, field, (LEN, wire))]
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
