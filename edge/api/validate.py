"""Checks of what a PDA sends, before any of it reaches the workflow or SQLite.

Promises:

- :func:`json_object` takes the raw body and returns a JSON object or raises
  :class:`BadInputError` ``bad_json``: the body must be UTF-8 (RFC 8259), nest
  at most :data:`MAX_JSON_DEPTH` arrays/objects deep (checked on the text
  before the parser recurses, so no nesting reaches ``RecursionError``).
- :func:`text`, :func:`integer` and :func:`clean` return a field's value or
  raise ``invalid_request``: strings are non-empty, bounded and encodable as
  UTF-8 (no lone surrogates, which JSON's ``\\ud800`` escapes and aiohttp's
  ``surrogateescape`` header decoding both produce and SQLite refuses);
  integers are bounded (SQLite stores 64 bits; counts are far smaller).
- Nothing here echoes a client's value back in a message: messages name the
  field and the rule only.

Pure functions over values: no aiohttp, no I/O.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from common.errors import PickEdgeError

#: deeper JSON is refused; a PDA body nests 1 level, 32 leaves room for anything honest
MAX_JSON_DEPTH = 32
#: the largest count or stop number a body may carry (SQLite's int64 is far above)
MAX_COUNT = 1_000_000

# A JSON string (escapes included), removed before brackets are counted so a
# bracket inside one does not count. Possessive, and an unterminated string runs
# to the end: a failed match would otherwise be retried from every later quote,
# quadratic in a body of escaped quotes (``"\\"\\"\\"…``).
_STRINGS = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class BadInputError(PickEdgeError):
    """A request whose body or field is refused: 400 with a stable ``code``."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (strings skipped).

    Every step runs in C (regex substitution, ``accumulate``, ``max``): a
    Python loop over the brackets of a 1 MiB body took over 100 ms."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The JSON object in ``raw``; ``bad_json`` when it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError("bad_json", "the body is not UTF-8") from None
    # The cheap bound first: fewer brackets than the limit cannot nest deeper.
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise BadInputError("bad_json", f"the body nests deeper than {max_depth} levels")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError's text names a position, never the body's content
        raise BadInputError("bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInputError("bad_json", "the body must be a JSON object")
    return body


def clean(value: str) -> bool:
    """True when ``value`` is encodable as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(body: dict[str, Any], key: str, limit: int) -> str:
    """``body[key]``: a non-empty string of at most ``limit`` characters, valid UTF-8."""
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit or not clean(value):
        raise BadInputError(
            "invalid_request", f"{key!r} must be a non-empty UTF-8 string of at most {limit}"
        )
    return value


def path_text(value: str, name: str, limit: int) -> str:
    """A path parameter: non-empty, at most ``limit`` characters, valid UTF-8."""
    if not value or len(value) > limit or not clean(value):
        raise BadInputError(
            "invalid_request", f"{name} must be a non-empty UTF-8 string of at most {limit}"
        )
    return value


def integer(body: dict[str, Any], key: str, *, lo: int = 0, hi: int = MAX_COUNT) -> int:
    """``body[key]``: an integer (not a bool) from ``lo`` to ``hi``."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadInputError("invalid_request", f"{key!r} must be an integer from {lo} to {hi}")
    return value
