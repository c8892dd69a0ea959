"""Batching problems: validation of batching-v1 dicts into a frozen internal model.

Input: a problem dict as in ``contracts/batching-v1.md`` (plus the options of
``docs/batching.md``: ``seed``, ``max_iterations``). Output: a
:class:`BatchProblem`. The layout and every pick are validated by
:func:`edge.routing.parse_problem` exactly as routing-v1 says, with the field
paths of its messages rewritten to this format's (``picks[7].y`` becomes
``orders[2].picks[1].y``). Every defect raises :class:`BatchingProblemError`
(a ``ValueError``) whose message starts with the field path. No I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from common.errors import PickEdgeError
from edge.routing import RoutingProblemError, parse_problem
from edge.routing.model import BlockProblem, GraphProblem

#: the budget when the problem names none (batching-v1)
DEFAULT_TIME_LIMIT_MS = 1000.0


class BatchingProblemError(PickEdgeError, ValueError):
    """A batching problem that cannot be batched; the message names the field."""

    code = "batching_problem_invalid"
    exit_code = 2


def _fail(path: str, message: str) -> BatchingProblemError:
    return BatchingProblemError(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class Order:
    id: str | int
    picks: tuple[dict[str, Any], ...]  # routing-v1 picks (id, aisle/y or edge/offset_m)
    units: int


@dataclass(frozen=True, slots=True)
class BatchProblem:
    layout: dict[str, Any]
    orders: tuple[Order, ...]
    max_units: int
    max_orders: int  # len(orders) when the problem sets no limit
    time_limit_ms: float | None  # None: only max_iterations stops the search
    max_iterations: int | None
    seed: int
    routing: BlockProblem | GraphProblem  # every pick of every order, validated

    def route_problem(self, orders: list[int]) -> dict[str, Any]:
        """The routing-v1 problem of the picks of these orders (by index)."""
        picks = [p for i in orders for p in self.orders[i].picks]
        return {"layout": self.layout, "picks": picks}


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path or "problem", f"must be an object, got {type(value).__name__}")
    return value


def _field(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _fail(f"{path}.{key}" if path else key, "missing")
    return obj[key]


def _positive_int(value: Any, path: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(path, f"must be at least {minimum}, got {value}")
    return value


def _id(value: Any, path: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(path, f"must be a string, got {value!r}")
    return value


_PICK_PATH = re.compile(r"picks\[(\d+)\]")


def parse_batch_problem(problem: Any) -> BatchProblem:
    """Validate a batching-v1 problem; raise BatchingProblemError naming the field."""
    obj = _obj(problem, "")
    layout = _obj(_field(obj, "layout", ""), "layout")
    for key in ("start", "end", "blocked", "picks"):
        if key in obj:
            raise _fail(key, "not part of a batching problem (routing-v1 only)")
    cap = _obj(_field(obj, "capacity", ""), "capacity")
    max_units = _positive_int(_field(cap, "units", "capacity"), "capacity.units")
    raw_orders = _field(obj, "orders", "")
    if not isinstance(raw_orders, list):
        raise _fail("orders", f"must be a list, got {type(raw_orders).__name__}")
    max_orders = len(raw_orders) or 1
    if cap.get("orders") is not None:
        max_orders = _positive_int(cap["orders"], "capacity.orders")
    unknown = set(cap) - {"units", "orders"}
    if unknown:
        raise _fail(f"capacity.{sorted(unknown)[0]}", "unknown field (expected units, orders)")

    orders: list[Order] = []
    where: list[tuple[int, int]] = []  # flat pick index -> (order, pick)
    flat: list[dict[str, Any]] = []
    seen: dict[str | int, int] = {}
    for i, raw in enumerate(raw_orders):
        p = f"orders[{i}]"
        o = _obj(raw, p)
        oid = _id(_field(o, "id", p), f"{p}.id")
        if oid in seen:
            raise _fail(f"{p}.id", f"duplicate order id {oid!r} (also orders[{seen[oid]}])")
        seen[oid] = i
        raw_picks = _field(o, "picks", p)
        if not isinstance(raw_picks, list) or not raw_picks:
            raise _fail(f"{p}.picks", "must be a non-empty list of picks")
        picks: list[dict[str, Any]] = []
        units = 0
        for j, rp in enumerate(raw_picks):
            pp = f"{p}.picks[{j}]"
            pick = _obj(rp, pp)
            u = _positive_int(pick.get("units", 1), f"{pp}.units")
            units += u
            clean = {k: v for k, v in pick.items() if k != "units"}
            picks.append(clean)
            where.append((i, j))
            flat.append(clean)
        if units > max_units:
            raise _fail(
                f"{p}.picks",
                f"order {oid!r} has {units} units, more than a cart carries "
                f"(capacity.units = {max_units}); orders are never split",
            )
        orders.append(Order(oid, tuple(picks), units))

    try:
        routing = parse_problem({"layout": layout, "picks": flat})
    except RoutingProblemError as exc:

        def rename(m: re.Match[str]) -> str:
            i, j = where[int(m.group(1))]
            return f"orders[{i}].picks[{j}]"

        raise BatchingProblemError(_PICK_PATH.sub(rename, str(exc))) from exc

    limit = obj.get("time_limit_ms")
    iterations = obj.get("max_iterations")
    if iterations is not None:
        iterations = _positive_int(iterations, "max_iterations", minimum=0)
    time_limit: float | None
    if limit is None:
        time_limit = None if iterations is not None else DEFAULT_TIME_LIMIT_MS
    else:
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int | float)
            or not math.isfinite(limit)
        ):
            raise _fail("time_limit_ms", f"must be a number, got {limit!r}")
        if limit <= 0:
            raise _fail("time_limit_ms", f"must be positive, got {limit!r}")
        time_limit = float(limit)
    seed = obj.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail("seed", f"must be an integer, got {seed!r}")
    return BatchProblem(
        layout=layout,
        orders=tuple(orders),
        max_units=max_units,
        max_orders=max_orders,
        time_limit_ms=time_limit,
        max_iterations=iterations,
        seed=seed,
        routing=routing,
    )
