"""Framer, encoder and record parser for the MagicRF M100 ("YRM100") protocol.

Frame: ``BB Type Cmd PL_hi PL_lo Param… Checksum 7E``; ``Checksum`` is the low
8 bits of the byte sum from ``Type`` to the last parameter. Type 00 command,
01 response, 02 notification. Single inventory 0x22, multi-poll 0x27, stop
0x28; a tag notification (type 02, cmd 22) carries signed RSSI, PC, EPC and the
tag's CRC-16; error response ``BB 01 FF 00 01 <code> <sum> 7E`` with code 0x15
meaning "no tag", sent continuously while polling an empty field.

Promises: :class:`M100Framer` returns only frames with a valid type, a bounded
length, the 7E end byte and a correct checksum; junk before a ``BB`` header is
skipped and counted, a frame failing any check is counted and the framer
resynchronises one byte after its header; the buffer is capped;
``flush_idle()`` drops a stalled partial frame after silence. Never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import FrameError
from devices.framing.base import BAD, JUNK, NEED_MORE, HeaderFramer

HEADER = 0xBB
END = 0x7E
TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTIFICATION = 0x02
CMD_SINGLE_INVENTORY = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP = 0x28
CMD_ERROR = 0xFF
ERROR_NO_TAG = 0x15
MAX_PARAM = 512  # longest real answers (memory reads) stay well below this
OVERHEAD = 7  # BB Type Cmd PLh PLl Checksum 7E


@dataclass(frozen=True, slots=True)
class M100Frame:
    type: int
    cmd: int
    params: bytes


@dataclass(frozen=True, slots=True)
class M100TagRead:
    rssi_dbm: int  # signed byte
    pc: int
    epc: bytes
    crc: int


@dataclass(frozen=True, slots=True)
class M100Error:
    error_code: int

    @property
    def no_tag(self) -> bool:
        return self.error_code == ERROR_NO_TAG


M100Record = M100TagRead | M100Error


def checksum(body: bytes | bytearray) -> int:
    return sum(body) & 0xFF


def encode_frame(type_: int, cmd: int, params: bytes = b"") -> bytes:
    if len(params) > 0xFFFF:
        raise ValueError("M100 parameters too long")
    body = bytes([type_ & 0xFF, cmd & 0xFF]) + len(params).to_bytes(2, "big") + params
    return bytes([HEADER]) + body + bytes([checksum(body), END])


def encode_single_inventory() -> bytes:
    return encode_frame(TYPE_COMMAND, CMD_SINGLE_INVENTORY)


def encode_multi_poll(count: int = 10000) -> bytes:
    """``BB 00 27 00 03 22 <count:2> <sum> 7E`` (0x22 is a reserved byte)."""
    return encode_frame(TYPE_COMMAND, CMD_MULTI_POLL, bytes([0x22]) + count.to_bytes(2, "big"))


def encode_stop() -> bytes:
    return encode_frame(TYPE_COMMAND, CMD_STOP)


def encode_tag_notification(epc: bytes, *, rssi_dbm: int = -60, pc: int | None = None) -> bytes:
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError("EPC length must be an even number of bytes up to 62")
    if pc is None:
        pc = (len(epc) // 2) << 11
    crc = crc16_epc(pc.to_bytes(2, "big") + epc)
    params = (
        (rssi_dbm & 0xFF).to_bytes(1, "big") + pc.to_bytes(2, "big") + epc + crc.to_bytes(2, "big")
    )
    return encode_frame(TYPE_NOTIFICATION, CMD_SINGLE_INVENTORY, params)


def encode_error(error_code: int) -> bytes:
    return encode_frame(TYPE_RESPONSE, CMD_ERROR, bytes([error_code & 0xFF]))


def crc16_epc(data: bytes) -> int:
    """The EPC Gen2 CRC-16 (ISO/IEC 13239: poly 0x1021, init 0xFFFF, inverted)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc ^ 0xFFFF


def parse_record(frame: M100Frame) -> M100Record | None:
    """A tag notification or an error; ``None`` for other frames; ``FrameError`` if malformed."""
    if frame.cmd == CMD_ERROR and frame.type == TYPE_RESPONSE:
        if len(frame.params) != 1:
            raise FrameError(f"M100 error frame with {len(frame.params)} parameter bytes")
        return M100Error(frame.params[0])
    if frame.type == TYPE_NOTIFICATION and frame.cmd == CMD_SINGLE_INVENTORY:
        p = frame.params
        if len(p) < 5:
            raise FrameError(f"M100 tag notification too short ({len(p)} bytes)")
        pc = int.from_bytes(p[1:3], "big")
        epc_len = ((pc >> 11) & 0x1F) * 2
        if len(p) != 1 + 2 + epc_len + 2:
            raise FrameError(
                f"M100 tag notification: PC 0x{pc:04X} says {epc_len} EPC bytes, "
                f"frame holds {len(p) - 5}"
            )
        rssi = p[0] - 256 if p[0] >= 0x80 else p[0]
        return M100TagRead(
            rssi_dbm=rssi,
            pc=pc,
            epc=bytes(p[3 : 3 + epc_len]),
            crc=int.from_bytes(p[3 + epc_len : 5 + epc_len], "big"),
        )
    return None


class M100Framer(HeaderFramer[M100Frame]):
    """Pure M100 framer; see the module docstring."""

    HEADER = HEADER

    def _frame_at(self, buf: bytearray, pos: int) -> tuple[int, M100Frame | None]:
        n = len(buf)
        # Reject an impossible type as soon as it is seen, so junk cannot stall the stream.
        if pos + 1 < n and buf[pos + 1] > TYPE_NOTIFICATION:
            return JUNK, None
        if pos + 5 > n:
            return NEED_MORE, None
        plen = int.from_bytes(buf[pos + 3 : pos + 5], "big")
        if plen > MAX_PARAM:
            return JUNK, None
        end = pos + OVERHEAD + plen
        if end > n:
            return NEED_MORE, None
        if buf[end - 1] != END or checksum(buf[pos + 1 : end - 2]) != buf[end - 2]:
            return BAD, None
        return end, M100Frame(buf[pos + 1], buf[pos + 2], bytes(buf[pos + 5 : end - 2]))
