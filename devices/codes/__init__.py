"""Decoding of scanned codes and EPCs: GS1 element strings, GTIN, SSCC, AIM
symbology ids, EPC Tag Data Standard schemes, SKUs and location labels.

Pure functions only: nothing here reads a device, a clock or a database.
"""

from devices.codes.aim import SYMBOLOGIES, Symbology, split_aim
from devices.codes.decode import (
    DEFAULT_LOCATION_PATTERN,
    LOCATION_PREFIX,
    CodeKind,
    DecodedCode,
    decode,
    decode_epc,
)
from devices.codes.epc import EpcInfo
from devices.codes.gs1 import GS, GS1Element

__all__ = [
    "DEFAULT_LOCATION_PATTERN",
    "GS",
    "LOCATION_PREFIX",
    "SYMBOLOGIES",
    "CodeKind",
    "DecodedCode",
    "EpcInfo",
    "GS1Element",
    "Symbology",
    "decode",
    "decode_epc",
    "split_aim",
]
