"""What every fuzz harness shares: the hypothesis profiles, the time budget and
the check that only a boundary's declared errors come out of it.

Profiles (registered here, applied per harness with ``@FUZZ`` so the rest of
the suite keeps its own settings): ``fuzz-ci`` is the short pass CI runs,
``fuzz-long`` the one ``bench/fuzz.sh`` runs; ``PICKEDGE_FUZZ=long`` selects
it, ``PICKEDGE_FUZZ_EXAMPLES=N`` overrides the number of examples of either.

The budget: one call of a decoder on one input takes at most
:data:`BUDGET_S`. A call over it is measured again up to :data:`RETRIES` times
and judged by its fastest run, so a scheduler hiccup on a loaded two-core CI box
does not fail the pass, while an input that is slow every time does. The
harness never relaxes the budget itself; hypothesis' own ``deadline`` is off
because it would judge the first, slowest run.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: the most one decoder call may take on any input (issue 14: "no input over 100 ms")
BUDGET_S = 0.100
#: how many times a call over budget is measured again; the fastest run counts
RETRIES = 3

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
_CI_EXAMPLES = 200
_LONG_EXAMPLES = 20_000


def _examples(default: int) -> int:
    raw = os.environ.get("PICKEDGE_FUZZ_EXAMPLES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


settings.register_profile(
    "fuzz-ci",
    max_examples=_examples(_CI_EXAMPLES),
    deadline=None,
    suppress_health_check=_SUPPRESS,
    derandomize=False,
    print_blob=True,
)
settings.register_profile(
    "fuzz-long",
    max_examples=_examples(_LONG_EXAMPLES),
    deadline=None,
    suppress_health_check=_SUPPRESS,
    print_blob=True,
)
LONG = os.environ.get("PICKEDGE_FUZZ", "").lower() == "long"
#: the settings of every harness: ``@FUZZ`` above ``@given``
FUZZ = settings.get_profile("fuzz-long" if LONG else "fuzz-ci")


def scaled(examples: int) -> settings:
    """``FUZZ`` with fewer examples for a harness whose examples are costly
    (a real server, a database): ``examples`` in CI, ten times more in a long
    run, never more than ``PICKEDGE_FUZZ_EXAMPLES``."""
    return settings(FUZZ, max_examples=min(examples * (10 if LONG else 1), FUZZ.max_examples))


T = TypeVar("T")


class Refused:
    """What a call raised, when it raised one of its declared errors."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Refused({type(self.error).__name__}: {self.error})"


def within_budget(
    fn: Callable[[], T], *, declared: tuple[type[BaseException], ...] = ()
) -> T | Refused:
    """``fn()``'s result, or :class:`Refused` with a declared error; any other
    exception propagates (the harness fails), and so does a call that stays over
    :data:`BUDGET_S` on every one of its runs. ``fn`` must be repeatable: it
    builds whatever state it needs (a new framer) itself."""
    fastest = float("inf")
    outcome: Any = None
    for _ in range(RETRIES):
        start = time.perf_counter()
        try:
            outcome = fn()
        except declared as exc:
            outcome = Refused(exc)
        elapsed = time.perf_counter() - start
        fastest = min(fastest, elapsed)
        if fastest <= BUDGET_S:
            break
    assert fastest <= BUDGET_S, (
        f"{fastest * 1000:.1f} ms on every run (budget {BUDGET_S * 1000:.0f})"
    )
    return outcome  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid input changed the way a noisy line or a buggy sender changes
    it: bytes flipped, cut short, cut at the front, glued to junk or to
    itself, a run repeated, bytes inserted or deleted."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(
                ["flip", "truncate", "behead", "junk", "twice", "insert", "delete", "repeat"]
            )
        )
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif op == "truncate" and n:
            del data[draw(st.integers(0, n - 1)) :]
        elif op == "behead" and n:
            del data[: draw(st.integers(1, n))]
        elif op == "junk":
            junk = draw(st.binary(max_size=32))
            data = bytearray(junk) + data if draw(st.booleans()) else data + junk
        elif op == "twice":
            data = data + data
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "repeat" and n:
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i, min(n, i + 16)))
            data[i:i] = data[i:j] * draw(st.integers(1, 64))
    return bytes(data)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (modulo its length), in order."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


#: JSON scalars a sender gets wrong: wrong types, huge and tiny numbers,
#: lone surrogates, control characters, long strings
HOSTILE_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400]),
    st.floats(),
    st.sampled_from([1e308, -1e308, 5e-324, float("inf"), float("-inf"), float("nan")]),
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\x1d", "\u202e", "é" * 300, "9" * 5000]),
)


def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like documents whose leaves are :data:`HOSTILE_SCALARS`."""
    key = keys if keys is not None else st.text(max_size=12)
    return st.recursive(
        HOSTILE_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=12,
    )


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text nesting ``depth`` arrays and objects alternately."""
    return (
        "".join("[" if i % 2 else '{"a":' for i in range(depth))
        + leaf
        + "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    )


EXTREME_INTS = st.sampled_from(
    [-1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400)]
)
EXTREME_FLOATS = st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, -0.0, 5e-324])
EXTREME_TEXTS = st.sampled_from(
    ["", " ", "\ud800", "A\udfffB", "\x00", "\x1d", "\r\n", "\u202e", "é" * 500, "A" * 70_000]
)


def _extreme(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same JSON type as ``value``, at the edge of its range."""
    if isinstance(value, bool):
        return st.sampled_from([0, 1, "true", None])
    if isinstance(value, int):
        return EXTREME_INTS | EXTREME_FLOATS
    if isinstance(value, float):
        return EXTREME_FLOATS | EXTREME_INTS
    if isinstance(value, str):
        return EXTREME_TEXTS
    return HOSTILE_SCALARS


@st.composite
def json_mutated(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid JSON document with a few members changed: a value replaced by
    a hostile one (wrong type, huge number, surrogate…), a member deleted or
    added, a value wrapped in deep nesting, an object turned into an array."""
    # a copy: strategies such as st.just hand out one object, which must not change
    doc = copy.deepcopy(draw(valid))

    def containers(value: Any) -> list[Any]:
        found: list[Any] = []
        if isinstance(value, dict | list):
            found.append(value)
            for child in value.values() if isinstance(value, dict) else value:
                found.extend(containers(child))
        return found

    for _ in range(draw(st.integers(1, 3))):
        places = containers(doc)
        if not places:
            return draw(json_values())
        where = draw(st.sampled_from(places))
        op = draw(
            st.sampled_from(["extreme", "extreme", "replace", "delete", "add", "deep", "listify"])
        )
        if isinstance(where, dict):
            keys = sorted(where)
            key = draw(st.sampled_from(keys)) if keys else draw(st.text(max_size=8))
            if op == "extreme":
                where[key] = draw(_extreme(where.get(key)))
            elif op == "delete" and keys:
                del where[key]
            elif op == "add":
                where[draw(st.text(max_size=12))] = draw(json_values())
            elif op == "deep":
                value: Any = where.get(key)
                for _ in range(draw(st.integers(1, 40))):
                    value = [value]
                where[key] = value
            elif op == "listify":
                where[key] = [where.get(key)]
            else:
                where[key] = draw(HOSTILE_SCALARS | json_values())
        elif where:
            i = draw(st.integers(0, len(where) - 1))
            if op == "extreme":
                where[i] = draw(_extreme(where[i]))
            elif op == "delete":
                del where[i]
            elif op == "add":
                where.insert(i, draw(json_values()))
            else:
                where[i] = draw(HOSTILE_SCALARS | json_values())
    return doc


def slowest_feed(make: Callable[[], Callable[[bytes], object]], chunks: list[bytes]) -> float:
    """The longest ``feed(chunk)`` over ``chunks`` fed in order to a new
    ``make()``, in seconds; measured again (up to :data:`RETRIES` runs, the
    fastest counts) while over :data:`BUDGET_S`."""
    best = float("inf")
    for _ in range(RETRIES):
        feed = make()
        worst = 0.0
        for chunk in chunks:
            start = time.perf_counter()
            feed(chunk)
            worst = max(worst, time.perf_counter() - start)
        best = min(best, worst)
        if best <= BUDGET_S:
            break
    return best
