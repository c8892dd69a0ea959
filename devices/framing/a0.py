"""Framer, encoder and record parser for the R2000-style "A0" UHF RFID protocol.

Frame: ``A0 Len Addr Cmd Data… Check`` where ``Len`` counts the bytes after it
and ``Check`` is the two's complement of the byte sum of everything before it
(so the sum of a whole good frame is 0 mod 256). 115200 8N1 by default.

Promises: :class:`A0Framer` returns only frames whose check is right; it skips
junk up to the next ``A0`` header (counted), rejects impossible lengths, drops a
frame with a bad check (counted) and resynchronises one byte after its header so
that a false header inside junk cannot swallow the good frames behind it. The
buffer is capped. :func:`parse_record` turns a real-time-inventory (0x89) frame
into a tag read, a round summary or a reader error. Never does I/O.

Limit of the format: an 8-bit sum lets a random byte run that starts with A0
pass the check with probability 1/256; every single-bit error inside a frame's
body or check is detected.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import FrameError
from devices.framing.base import BAD, JUNK, NEED_MORE, HeaderFramer

HEADER = 0xA0
CMD_REAL_TIME_INVENTORY = 0x89
MIN_LEN = 3  # Addr, Cmd, Check
RSSI_OFFSET = 129  # dBm ≈ raw − 129 (vendor RSSI table)

# Reader error codes seen in answers to 0x89 (vendor protocol, error code table).
ERROR_NAMES: dict[int, str] = {
    0x10: "success",
    0x11: "fail",
    0x20: "mcu_reset_error",
    0x21: "cw_on_error",
    0x22: "antenna_missing_error",
    0x31: "tag_inventory_error",
    0x36: "no_tag_error",
    0x38: "fail_to_get_rn16_from_tag",
    0x41: "parameter_invalid",
    0x4B: "antenna_missing",
}


@dataclass(frozen=True, slots=True)
class A0Frame:
    addr: int
    cmd: int
    data: bytes


@dataclass(frozen=True, slots=True)
class A0TagRead:
    """One tag record of a real-time inventory round."""

    antenna: int  # 0-based, from the low 2 bits of FreqAnt
    freq_index: int  # high 6 bits of FreqAnt
    pc: int
    epc: bytes
    rssi_raw: int

    @property
    def rssi_dbm(self) -> float:
        return float(self.rssi_raw - RSSI_OFFSET)


@dataclass(frozen=True, slots=True)
class A0Summary:
    """End of an inventory round (the 0x0A-length frame)."""

    antenna: int
    read_rate: int  # tags per second
    total_reads: int


@dataclass(frozen=True, slots=True)
class A0Error:
    cmd: int
    error_code: int

    @property
    def name(self) -> str:
        return ERROR_NAMES.get(self.error_code, f"error_0x{self.error_code:02x}")


A0Record = A0TagRead | A0Summary | A0Error


def checksum(data: bytes) -> int:
    """Two's complement of the byte sum."""
    return (-sum(data)) & 0xFF


def encode_frame(addr: int, cmd: int, data: bytes = b"") -> bytes:
    length = len(data) + MIN_LEN
    if length > 0xFF:
        raise ValueError(f"A0 frame data too long ({len(data)} bytes)")
    body = bytes([HEADER, length, addr & 0xFF, cmd & 0xFF]) + data
    return body + bytes([checksum(body)])


def encode_inventory_command(addr: int = 0x01, repeat: int = 1) -> bytes:
    """``cmd_real_time_inventory``: ``A0 04 Addr 89 Repeat Check``."""
    return encode_frame(addr, CMD_REAL_TIME_INVENTORY, bytes([repeat & 0xFF]))


def encode_tag_record(
    addr: int,
    epc: bytes,
    *,
    antenna: int = 0,
    rssi_raw: int = 80,
    freq_index: int = 0,
    pc: int | None = None,
) -> bytes:
    """A 0x89 tag record as a reader sends it; ``pc`` defaults to one matching ``epc``."""
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError("EPC length must be an even number of bytes up to 62")
    if pc is None:
        pc = (len(epc) // 2) << 11 | 0x0000
    freq_ant = ((freq_index & 0x3F) << 2) | (antenna & 0x03)
    data = bytes([freq_ant]) + pc.to_bytes(2, "big") + epc + bytes([rssi_raw & 0xFF])
    return encode_frame(addr, CMD_REAL_TIME_INVENTORY, data)


def encode_summary(addr: int, *, antenna: int, read_rate: int, total_reads: int) -> bytes:
    data = bytes([antenna & 0xFF]) + read_rate.to_bytes(2, "big") + total_reads.to_bytes(4, "big")
    return encode_frame(addr, CMD_REAL_TIME_INVENTORY, data)


def encode_error(addr: int, cmd: int, error_code: int) -> bytes:
    return encode_frame(addr, cmd, bytes([error_code & 0xFF]))


def frame_bytes(frame: A0Frame) -> bytes:
    return encode_frame(frame.addr, frame.cmd, frame.data)


def parse_record(frame: A0Frame) -> A0Record | None:
    """Interpret a 0x89 answer; ``None`` for other commands; ``FrameError`` if malformed.

    Length decides the kind (Len = data + 3): 1 data byte is an error code, 7 a
    round summary, anything else a tag record whose EPC length comes from PC.
    """
    if frame.cmd != CMD_REAL_TIME_INVENTORY:
        if len(frame.data) == 1:
            return A0Error(frame.cmd, frame.data[0])
        return None
    data = frame.data
    if len(data) == 1:
        return A0Error(frame.cmd, data[0])
    if len(data) == 7:
        return A0Summary(
            antenna=data[0],
            read_rate=int.from_bytes(data[1:3], "big"),
            total_reads=int.from_bytes(data[3:7], "big"),
        )
    if len(data) < 4:
        raise FrameError(f"A0 0x89 record too short ({len(data)} data bytes)")
    pc = int.from_bytes(data[1:3], "big")
    epc_len = ((pc >> 11) & 0x1F) * 2
    if len(data) != 1 + 2 + epc_len + 1:
        raise FrameError(
            f"A0 0x89 record: PC 0x{pc:04X} says {epc_len} EPC bytes, frame holds {len(data) - 4}"
        )
    return A0TagRead(
        antenna=data[0] & 0x03,
        freq_index=data[0] >> 2,
        pc=pc,
        epc=bytes(data[3 : 3 + epc_len]),
        rssi_raw=data[3 + epc_len],
    )


class A0Framer(HeaderFramer[A0Frame]):
    """Pure A0 framer; see the module docstring."""

    HEADER = HEADER

    def _frame_at(self, buf: bytearray, pos: int) -> tuple[int, A0Frame | None]:
        if pos + 1 >= len(buf):
            return NEED_MORE, None
        length = buf[pos + 1]
        if length < MIN_LEN:
            return JUNK, None
        end = pos + 2 + length
        if end > len(buf):
            return NEED_MORE, None
        if sum(buf[pos:end]) & 0xFF:  # a good frame sums to 0
            return BAD, None
        return end, A0Frame(buf[pos + 2], buf[pos + 3], bytes(buf[pos + 4 : end - 1]))
