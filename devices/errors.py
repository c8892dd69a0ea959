"""Errors of the device layer.

One tree rooted at :class:`DeviceError`. Each class carries a stable ``code``
string that logs, metrics and the operations API use; the human text is the
message. Foreign errors (``OSError``, ``serial.SerialException``, MQTT errors)
are re-raised ``from`` the original so the cause stays visible.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Root of every error raised by ``devices``."""

    code = "device_error"


class DeviceConfigError(DeviceError, ValueError):
    """A device's configuration cannot work (unknown driver, bad URL, bad option)."""

    code = "device_config_invalid"


class DeviceDisconnectedError(DeviceError, ConnectionError):
    """The transport to a device was lost; the supervisor reconnects."""

    code = "device_disconnected"


class FrameError(DeviceError, ValueError):
    """A frame or payload could not be decoded; it is counted and dropped."""

    code = "bad_frame"


class CodeError(DeviceError, ValueError):
    """A scanned code or EPC is invalid (bad check digit, malformed element string)."""

    code = "invalid_code"


class LabelError(DeviceError, ValueError):
    """Label data a printer must not get: a bad SSCC, a field that would break ZPL."""

    code = "invalid_label"


class PrinterUnavailableError(DeviceDisconnectedError):
    """A printer cannot be reached, or dropped the connection mid-operation."""

    code = "printer_unavailable"


class PrinterTimeoutError(PrinterUnavailableError, TimeoutError):
    """A printer accepted the connection but did not answer or take data in time."""

    code = "printer_timeout"


class PrinterFaultError(DeviceError):
    """A printer reports a fault (paper out, head open, paused...).

    ``sent`` tells whether the job's bytes were already handed to the printer
    (a fault seen after sending: the printer holds the job and usually prints
    it once the fault is cleared) or not (a fault seen before: nothing sent).
    """

    code = "printer_fault"

    def __init__(self, problem: str, *, sent: bool) -> None:
        super().__init__(problem)
        self.problem = problem
        self.sent = sent
