"""The length of the shortest tour through a set of orders, fast and memoised.

The batching search prices tens of thousands of candidate batches a second; the
full :func:`edge.routing.route` (validation, DP, Euler walk, legs) takes about a
millisecond. :class:`BlockCoster` gives the same optimal *length* in tens of
microseconds on conventional layouts, for any set of orders given as a bitmask:

- **What the DP needs of a batch.** The exact column DP of Ratliff & Rosenthal
  (one block) and of Pansart, Catusse & Cambazard (several blocks) sees a
  sub-aisle only through the costs of its five options: traverse once (L),
  twice (2L), from the bottom (2·highest pick), from the top (2·(L − lowest)),
  from both ends leaving out the largest gap (2·(L − gap)). Those depend on the
  sub-aisle's set of distinct pick positions and nothing else. Every distinct
  position of a sub-aisle is given a bit; an order is one integer (the bits of
  all its positions in all sub-aisles), a batch is the OR of its orders, and the
  option costs of a sub-aisle are memoised per bit pattern.
- **Transitions compiled once per number of cross aisles.** States (degree class
  of every cross-aisle node and which of them are connected) are numbered and
  the transitions enumerated once per number of cross aisles (they depend on no
  instance data); the whole pricing — reading each sub-aisle's pattern, its
  memoised option costs, every relaxation — is then written out as one
  straight-line Python function and compiled. Relaxations from sources that
  share a cost term compare the sources first and add the term once.
- **Columns kept per aisle set.** As in ``edge.routing.blocks``: columns outside
  the span of the batch's aisles and the depot are left out, and so is every run
  of empty aisles between two aisles (some optimal tour walks straight through
  such a run; see ``edge/routing/blocks.py: _kept_columns``). The kept columns
  are memoised per set of aisles.
- **Batch costs memoised** per order bitmask: the search revisits the same
  batches over and over.

The answer is the optimal length in integer millimetres — the same number
:func:`edge.routing.route` returns for the same picks (checked by the tests).
Pure; the only module state is the compiled transitions, which never change an
answer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_INF = 1 << 62

# node requirement: free, or covered with even degree (the depot)
_FREE, _EVEN = 0, 1

# A frontier state: one code per cross-aisle node, 0 = degree 0, else
# 3 * component + class (1 odd, 2 even > 0), components numbered in order of
# first appearance.
State = tuple[int, ...]
# a sub-aisle option: (copies at the bottom node, at the top node, joins them)
Option = tuple[int, int, int]

NONE: Option = (0, 0, 0)
ONCE: Option = (1, 1, 1)
TWICE: Option = (2, 2, 1)
BOTTOM: Option = (2, 0, 0)
TOP: Option = (0, 2, 0)
GAP: Option = (2, 2, 0)
#: option order inside a nonempty sub-aisle's cost tuple
PICK_OPTIONS: tuple[Option, ...] = (ONCE, TWICE, BOTTOM, TOP, GAP)
EMPTY_OPTIONS: tuple[Option, ...] = (ONCE, TWICE)
_CLOSED = -1


def _canon(codes: list[int]) -> State:
    names: dict[int, int] = {}
    out = []
    for c in codes:
        if c == 0:
            out.append(0)
        else:
            lab = names.setdefault(c // 3, len(names))
            out.append(3 * lab + c % 3)
    return tuple(out)


def _bump(code: int, copies: int, label: int) -> int:
    if copies == 0:
        return code
    if code == 0:
        return 3 * label + (1 if copies % 2 else 2)
    odd = (code % 3 == 1) != (copies % 2 == 1)
    return 3 * (code // 3) + (1 if odd else 2)


def _vstep(state: State, b: int, opt: Option) -> State:
    """The frontier after adding a sub-aisle option between nodes b and b + 1."""
    d_b, d_t, joins = opt
    codes = list(state)
    fresh = max((c // 3 for c in codes if c), default=-1) + 1
    lb = codes[b] // 3 if codes[b] else -1
    lt = codes[b + 1] // 3 if codes[b + 1] else -1
    if d_b and lb < 0:
        lb, fresh = fresh, fresh + 1
    if d_t and lt < 0:
        if joins:
            lt = lb
        else:
            lt, fresh = fresh, fresh + 1
    codes[b] = _bump(codes[b], d_b, lb)
    codes[b + 1] = _bump(codes[b + 1], d_t, lt)
    if joins and lb != lt:
        codes = [3 * lb + c % 3 if c and c // 3 == lt else c for c in codes]
    return _canon(codes)


def _allowed(cls: int, req: int, last: bool) -> tuple[int, ...]:
    """Copies of the cross-aisle segment leaving a node so its degree can end legal."""
    if last:
        ok = (req == _FREE and cls != 1) or (req == _EVEN and cls == 2)
        return (0,) if ok else ()
    if cls == 1:
        return (1,)
    if cls == 0:
        # a spur out of an untouched node only pays when the node must be visited
        return (2,) if req == _EVEN else (0,)
    return (0, 2)


def _htrans(state: State, req: tuple[int, ...], last: bool) -> list[tuple[State | None, int]]:
    """Every cheapest way to leave a column: (next frontier or None = closed, copies)."""
    choices = [_allowed(c % 3 if c else 0, r, last) for c, r in zip(state, req, strict=True)]
    labels = {c // 3 for c in state if c}
    best: dict[State | None, int] = {}
    for hs in itertools.product(*choices):
        total = sum(hs)
        nxt: State | None
        if total == 0:
            if not labels:
                nxt = state
            elif len(labels) == 1:
                nxt = None
            else:
                continue
        else:
            carried = {c // 3 for c, h in zip(state, hs, strict=True) if c and h}
            if carried != labels:
                continue  # a component would be cut off from the tour
            fresh = len(labels)
            codes = []
            for c, h in zip(state, hs, strict=True):
                if h == 0:
                    codes.append(0)
                    continue
                if c:
                    lab = c // 3
                else:
                    lab, fresh = fresh, fresh + 1
                codes.append(3 * lab + (1 if h == 1 else 2))
            nxt = _canon(codes)
        if nxt not in best or total < best[nxt]:
            best[nxt] = total
    return list(best.items())


@dataclass(frozen=True, slots=True)
class Machine:
    """Numbered states and their transitions for one number of cross-aisle nodes.

    ``vert[b][k][s]``: next state after option ``PICK_OPTIONS[k]`` in sub-aisle b
    (``EMPTY_OPTIONS`` for ``vert_empty``); ``horiz[(req, last)][s]``: (next state
    or -1 = the tour closes here, copies of the cross-aisle segments).
    """

    n_nodes: int
    states: tuple[State, ...]
    zero: int
    vert: tuple[tuple[tuple[int, ...], ...], ...]
    vert_empty: tuple[tuple[tuple[int, ...], ...], ...]
    horiz: dict[tuple[tuple[int, ...], bool], tuple[tuple[tuple[int, int], ...], ...]]
    price: Price


#: a sub-aisle of a column as the sweep reads it: (memo of its option costs by
#: pattern, shift of its bits, mask of its bits, field index); None: no picks
#: there in the whole problem
Field = tuple[dict[int, tuple[int, ...]], int, int, int]
#: a kept column: (its sub-aisles, or None for a virtual column at the depot),
#: dx to the next column, kind (bit 0: the depot's column, bit 1: the last
#: column), whether the tour may close here
Column = tuple[tuple[Field | None, ...] | None, int, int, bool]
#: price(bits, columns, block length, sub-aisle costs for a missed pattern)
Price = Callable[[int, tuple[Column, ...], int, Callable[[int, int], tuple[int, ...]]], int]


def _relax(indent: str, size: int, sources: dict[int, list[tuple[int, str]]]) -> list[str]:
    """Assign every next state its cheapest source, the sources grouped by cost.

    Sources that share a cost term are compared first and the term added once;
    the same group of sources shared by several next states is compared once.
    """
    groups: dict[int, dict[str, tuple[int, ...]]] = {}
    shared: dict[tuple[int, ...], str] = {}
    out: list[str] = []
    for ns in range(size):
        by_term: dict[str, list[int]] = {}
        for s, term in sources.get(ns, []):
            if s not in by_term.setdefault(term, []):
                by_term[term].append(s)
        groups[ns] = {term: tuple(sorted(ss)) for term, ss in sorted(by_term.items())}
        for ss in groups[ns].values():
            if len(ss) > 1 and ss not in shared:
                name = f"m{len(shared)}"
                shared[ss] = name
                out.append(f"{indent}{name} = s{ss[0]}")
                for s in ss[1:]:
                    out.append(f"{indent}if s{s} < {name}: {name} = s{s}")
    for ns in range(size):
        terms = []
        for term, ss in groups[ns].items():
            base = shared[ss] if len(ss) > 1 else f"s{ss[0]}"
            terms.append(f"{base} + {term}" if term else base)
        if not terms:
            out.append(f"{indent}n{ns} = INF")
            continue
        out.append(f"{indent}n{ns} = {terms[0]}")
        for t in terms[1:]:
            out.append(f"{indent}t = {t}")
            out.append(f"{indent}if t < n{ns}: n{ns} = t")
    out.append(
        f"{indent}{', '.join(f's{i}' for i in range(size))} = "
        f"{', '.join(f'n{i}' for i in range(size))}"
    )
    return out


def _requirements(n_nodes: int) -> list[tuple[tuple[int, ...], bool]]:
    free = (_FREE,) * n_nodes
    depot = (_EVEN,) + (_FREE,) * (n_nodes - 1)
    return [(free, False), (free, True), (depot, False), (depot, True)]


def _compile(n_nodes: int) -> Machine:
    ids: dict[State, int] = {}
    states: list[State] = []

    def intern(s: State) -> int:
        sid = ids.get(s)
        if sid is None:
            sid = ids[s] = len(states)
            states.append(s)
        return sid

    zero = intern((0,) * n_nodes)
    vmoves: dict[tuple[int, Option], dict[int, int]] = {}
    hmoves: dict[tuple[tuple[int, ...], bool], dict[int, list[tuple[int, int]]]] = {}
    options = set(PICK_OPTIONS) | set(EMPTY_OPTIONS)
    reqs = _requirements(n_nodes)
    todo = [zero]
    seen = {zero}
    while todo:
        sid = todo.pop()
        s = states[sid]
        nexts: list[int] = []
        for b in range(n_nodes - 1):
            for opt in options:
                ns = intern(_vstep(s, b, opt))
                vmoves.setdefault((b, opt), {})[sid] = ns
                nexts.append(ns)
        for req, last in reqs:
            outs = []
            for nxt, copies in _htrans(s, req, last):
                ns = _CLOSED if nxt is None else intern(nxt)
                outs.append((ns, copies))
                if ns >= 0:
                    nexts.append(ns)
            hmoves.setdefault((req, last), {})[sid] = outs
        for ns in nexts:
            if ns not in seen:
                seen.add(ns)
                todo.append(ns)
    size = len(states)

    def vt(b: int, opt: Option) -> tuple[int, ...]:
        return tuple(vmoves[(b, opt)][s] for s in range(size))

    vert = tuple(tuple(vt(b, o) for o in PICK_OPTIONS) for b in range(n_nodes - 1))
    vert_empty = tuple(tuple(vt(b, o) for o in EMPTY_OPTIONS) for b in range(n_nodes - 1))
    horiz = {key: tuple(tuple(moves[s]) for s in range(size)) for key, moves in hmoves.items()}
    return Machine(
        n_nodes=n_nodes,
        states=tuple(states),
        zero=zero,
        vert=vert,
        vert_empty=vert_empty,
        horiz=horiz,
        price=_generate(
            n_nodes=n_nodes, size=size, zero=zero, vert=vert, vert_empty=vert_empty, horiz=horiz
        ),
    )


def _generate(
    *,
    n_nodes: int,
    size: int,
    zero: int,
    vert: tuple[tuple[tuple[int, ...], ...], ...],
    vert_empty: tuple[tuple[tuple[int, ...], ...], ...],
    horiz: dict[tuple[tuple[int, ...], bool], tuple[tuple[tuple[int, int], ...], ...]],
) -> Price:
    """The whole pricing as straight-line Python: one local variable per state.

    The transitions are fixed per number of cross-aisle nodes, so the sweep is
    written out once and compiled, with the reading of each sub-aisle's pattern
    and its memoised option costs inlined: no per-column lists, tuples or calls
    on a memo hit. Sources of a state that share a cost term are compared first
    and the term added once (``m0 = s0; if s1 < m0: m0 = s1 ...; n1 = m0 + c1``).
    The source is built here from the transition tables only (no outside input
    reaches it).
    """
    free = (_FREE,) * n_nodes
    depot = (_EVEN,) + (_FREE,) * (n_nodes - 1)
    lines = ["def price(bits, columns, length, sub):", f"    INF = {_INF}"]
    lines += [f"    s{i} = {0 if i == zero else 'INF'}" for i in range(size)]
    lines += ["    best = INF", "    e0 = length", "    e1 = length + length"]
    lines += ["    for fields, dx, kind, closable in columns:", "        if fields is not None:"]
    for b in range(n_nodes - 1):
        lines += [
            f"            f = fields[{b}]",
            "            pat = 0 if f is None else (bits >> f[1]) & f[2]",
            "            if not pat:",
        ]
        src: dict[int, list[tuple[int, str]]] = {s: [(s, "")] for s in range(size)}
        for k, tab in enumerate(vert_empty[b]):
            for s, ns in enumerate(tab):
                src.setdefault(ns, []).append((s, f"e{k}"))
        lines += _relax("                ", size, src)
        lines += [
            "            else:",
            "                c = f[0].get(pat)",
            "                if c is None:",
            "                    c = sub(f[3], pat)",
            "                c0, c1, c2, c3, c4 = c",
        ]
        src = {}
        for k, tab in enumerate(vert[b]):
            for s, ns in enumerate(tab):
                src.setdefault(ns, []).append((s, f"c{k}"))
        lines += _relax("                ", size, src)
    for bit, req in ((0, free), (1, depot)):
        lines.append(f"        {'if' if bit == 0 else 'elif'} kind == {2 + bit}:")
        closing = [s for s in range(size) if any(ns < 0 for ns, _ in horiz[(req, True)][s])]
        lines.append("            if closable:")
        lines += [f"                if s{s} < best: best = s{s}" for s in closing]
        lines.append("            break")
    copies = max((c for moves in horiz.values() for row in moves for _, c in row), default=0)
    lines += [f"        d{c} = dx * {c}" for c in range(1, copies + 1)]
    for bit, req in ((0, free), (1, depot)):
        lines.append(f"        {'if' if bit == 0 else 'else'}{' kind == 0' if bit == 0 else ''}:")
        closing = [s for s in range(size) if any(ns < 0 for ns, _ in horiz[(req, False)][s])]
        if closing:
            lines.append("            if closable:")
            lines += [f"                if s{s} < best: best = s{s}" for s in closing]
        src = {}
        for s, moves in enumerate(horiz[(req, False)]):
            for ns, c in moves:
                if ns >= 0:
                    src.setdefault(ns, []).append((s, f"d{c}" if c else ""))
        lines += _relax("            ", size, src)
    lines.append("    return best")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<batching price, {n_nodes} nodes>", "exec"), namespace)  # noqa: S102
    found: Price = namespace["price"]
    return found


_MACHINES: dict[int, Machine] = {}
_MACHINES_LOCK = threading.Lock()


def machine(n_nodes: int) -> Machine:
    found = _MACHINES.get(n_nodes)
    if found is None:
        with _MACHINES_LOCK:
            found = _MACHINES.get(n_nodes)
            if found is None:
                found = _MACHINES[n_nodes] = _compile(n_nodes)
    return found


# --------------------------------------------------------------------------- the coster


@dataclass(frozen=True, slots=True)
class Spot:
    """A pick position: aisle, block, offset in mm from the block's front."""

    aisle: int
    block: int
    offset: int


class BlockCoster:
    """Optimal tour length (mm) of any set of orders on one conventional layout.

    ``spots[i]`` are the pick positions of order i. ``cost(mask)`` prices the
    orders whose bits are set in ``mask``; answers are memoised.
    """

    def __init__(
        self,
        *,
        aisles: int,
        pitch: int,
        blocks: int,
        block_length: int,
        depot_x: int,
        spots: list[list[Spot]],
    ) -> None:
        self.aisles = aisles
        self.blocks = blocks
        self.length = block_length
        self.machine = machine(blocks + 1)
        self.memo: dict[int, int] = {}
        self.evaluations = 0  # memo misses: full DPs run
        # every distinct offset of every sub-aisle gets a bit
        positions: dict[tuple[int, int], list[int]] = {}
        for order in spots:
            for s in order:
                positions.setdefault((s.aisle, s.block), []).append(s.offset)
        self._fields: list[tuple[int, int, int, int, tuple[int, ...]]] = []
        bit_of: dict[tuple[int, int, int], int] = {}
        shift = 0
        for (aisle, block), offs in sorted(positions.items()):
            distinct = tuple(sorted(set(offs)))
            for k, off in enumerate(distinct):
                bit_of[(aisle, block, off)] = shift + k
            full = (1 << len(distinct)) - 1
            self._fields.append((aisle, block, shift, full, distinct))
            shift += len(distinct)
        self.order_bits: list[int] = []
        self.order_aisles: list[int] = []
        #: per order, how deep it reaches into every sub-aisle from the front and
        #: from the back (0 where it has no picks): see :meth:`overlap`
        self._reach: list[tuple[int, ...]] = []
        index = {(f[0], f[1]): k for k, f in enumerate(self._fields)}
        for order in spots:
            bits = 0
            aisle_set = 0
            reach = [0] * (2 * len(self._fields))
            for s in order:
                bits |= 1 << bit_of[(s.aisle, s.block, s.offset)]
                aisle_set |= 1 << s.aisle
                k = index[(s.aisle, s.block)]
                reach[2 * k] = max(reach[2 * k], s.offset)
                reach[2 * k + 1] = max(reach[2 * k + 1], block_length - s.offset)
            self.order_bits.append(bits)
            self.order_aisles.append(aisle_set)
            self._reach.append(tuple(reach))
        self._sub_memo: list[dict[int, tuple[int, ...]]] = [{} for _ in self._fields]
        # per aisle, the sub-aisle of each block as the generated pricing reads it
        self._aisle_fields: list[tuple[Field | None, ...]] = [
            (None,) * blocks for _ in range(aisles)
        ]
        for k, (aisle, block, shift, full, _) in enumerate(self._fields):
            row = list(self._aisle_fields[aisle])
            row[block] = (self._sub_memo[k], shift, full, k)
            self._aisle_fields[aisle] = tuple(row)
        self._col_memo: dict[int, tuple[Column, ...]] = {}
        # columns: every aisle, plus a virtual column at a depot between aisles
        self.depot_x = depot_x
        self.pitch = pitch
        depot_aisle = depot_x // pitch if depot_x % pitch == 0 else None
        if depot_aisle is not None and not 0 <= depot_aisle < aisles:
            depot_aisle = None
        self.depot_aisle = depot_aisle

    # ---------------------------------------------------------------- sub-aisles

    def _sub_costs(self, k: int, pattern: int) -> tuple[int, ...]:
        """Costs of PICK_OPTIONS for the positions in ``pattern`` of field k."""
        distinct = self._fields[k][4]
        length = self.length
        low = pattern & -pattern
        first = prev = distinct[low.bit_length() - 1]
        gap = 0
        p = pattern ^ low
        while p:
            low = p & -p
            t = distinct[low.bit_length() - 1]
            d = t - prev
            gap = d if d > gap else gap
            prev = t
            p ^= low
        costs = (
            length,
            2 * length,
            2 * prev,
            2 * (length - first),
            2 * (length - gap) if gap else _INF,
        )
        self._sub_memo[k][pattern] = costs
        return costs

    def _columns(self, aisle_set: int) -> tuple[Column, ...]:
        """The kept columns of a batch visiting these aisles, as the pricing reads them."""
        pitch, depot_x = self.pitch, self.depot_x
        used = [a for a in range(self.aisles) if aisle_set >> a & 1]
        xs_req = [a * pitch for a in used] + [depot_x]
        lo_req, hi_req = min(xs_req), max(xs_req)
        aisle_xs = [a * pitch for a in range(self.aisles)]
        left = [x for x in aisle_xs if x <= lo_req]
        right = [x for x in aisle_xs if x >= hi_req]
        lo = max(left) if left else lo_req
        hi = min(right) if right else hi_req
        xs = sorted({x for x in aisle_xs if lo <= x <= hi} | {depot_x})
        cols: list[tuple[int, int]] = []  # (aisle or -1, x)
        plain: list[bool] = []
        absorber: list[bool] = []
        for x in xs:
            aisle = x // pitch if x % pitch == 0 and 0 <= x // pitch < self.aisles else -1
            cols.append((aisle, x))
            absorber.append(aisle >= 0)
            plain.append(aisle >= 0 and not aisle_set >> aisle & 1 and x != depot_x)
        kept = [cols[j] for j in _kept(plain, absorber)]
        out: list[Column] = []
        pending = len(used)  # aisles with picks not yet swept
        empty: tuple[Field | None, ...] = (None,) * self.blocks
        for j, (aisle, x) in enumerate(kept):
            last = j == len(kept) - 1
            dx = 0 if last else kept[j + 1][1] - x
            fields: tuple[Field | None, ...] | None = None
            if aisle >= 0:
                if aisle_set >> aisle & 1:
                    pending -= 1
                    fields = self._aisle_fields[aisle]
                else:
                    fields = empty
            kind = (1 if x == depot_x else 0) + (2 if last else 0)
            out.append((fields, dx, kind, pending == 0 and (x == depot_x or depot_x < x)))
        found = tuple(out)
        self._col_memo[aisle_set] = found
        return found

    def overlap(self, i: int, j: int) -> int:
        """How much walking orders i and j share, roughly (mm): a cheap proxy.

        The depth both reach into each sub-aisle from the front and from the
        back: what one walk into that sub-aisle serves for both. Ranks the pairs
        worth pricing exactly (the walk a pair saves) without running the DP.
        """
        return sum(map(min, self._reach[i], self._reach[j]))

    # ---------------------------------------------------------------- pricing

    def cost(self, mask: int) -> int:
        """Optimal tour length in mm over every pick of the orders in ``mask``."""
        found = self.memo.get(mask)
        if found is not None:
            return found
        bits = 0
        aisle_set = 0
        order_bits, order_aisles = self.order_bits, self.order_aisles
        m = mask
        while m:
            low = m & -m
            i = low.bit_length() - 1
            bits |= order_bits[i]
            aisle_set |= order_aisles[i]
            m ^= low
        if bits:
            cols = self._col_memo.get(aisle_set)
            if cols is None:
                cols = self._columns(aisle_set)
            found = self.machine.price(bits, cols, self.length, self._sub_costs)
        else:
            found = 0
        self.memo[mask] = found
        self.evaluations += 1
        return found


def _kept(plain: list[bool], absorber: list[bool]) -> list[int]:
    """Columns to sweep: a run of empty aisles between two aisles is left out."""
    n = len(plain)
    kept: list[int] = []
    for j in range(n):
        if plain[j]:
            run_start = j == 0 or not plain[j - 1]
            run_end = j == n - 1 or not plain[j + 1]
            keep_left = run_start and (j == 0 or not absorber[j - 1])
            keep_right = run_end and (j == n - 1 or not absorber[j + 1])
            if not (keep_left or keep_right):
                continue
        kept.append(j)
    return kept
