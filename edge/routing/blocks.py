"""Exact pick paths on conventional layouts (1 … MAX_EXACT_BLOCKS blocks).

The Ratliff–Rosenthal dynamic program, in the multi-block form of Pansart,
Catusse & Cambazard (2018): sweep the layout column by column (a column is an
aisle, or a virtual column at a depot/start/end that lies between aisles) and keep,
for the ``blocks + 1`` cross-aisle nodes of the current column, the parity class of
their degree (0, odd, even > 0) and which of them are already connected. A state
is the cheapest partial *tour subgraph* with that frontier. Its optimum is a
multiset of aisle and cross-aisle segments in which the start and the end (odd
degree if they differ) and every pick are covered, every other vertex has even
degree, and everything is connected: any Euler walk over it is an optimal route,
which is rebuilt by Hierholzer from the start.

Input is a validated :class:`~edge.routing.model.BlockProblem`; output a
:class:`BlockSolution` in integer millimetres. Pure. The only module state is a
memo of state transitions (and the options of an empty sub-aisle per length),
which depend on no instance data and are computed deterministically, so
concurrent callers can at worst compute one twice (a sweep that meets a state
numbered by another thread after it sized its cost lists starts again).

Empty aisles whose vertical travel a neighbouring aisle can take over are left out
of the sweep (:func:`_kept_columns`), which halves it on sparse orders.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from edge.routing.model import BlockProblem, RoutingProblemError

# Requirements on a vertex: none, covered with even degree, odd degree.
_FREE, _EVEN, _ODD = 0, 1, 2

# A frontier state is a tuple of codes, one per cross aisle: 0 = degree 0, else
# 3 * component + class, with class 1 = odd degree and 2 = even degree > 0 and
# components numbered in order of first appearance (so equal frontiers are equal
# tuples).
State = tuple[int, ...]
# A sub-aisle option: (copies added at the bottom node, at the top node, whether it
# joins the two nodes).
Option = tuple[int, int, int]

_INF = 1 << 62
_CLOSED: State = (-1,)
_NONE: Option = (0, 0, 0)
_ONCE: Option = (1, 1, 1)
_TWICE: Option = (2, 2, 1)


@dataclass(frozen=True, slots=True)
class BlockSolution:
    length: int  # mm
    sequence: tuple[int, ...]  # indices into problem.picks
    walk: tuple[tuple[int, int], ...]  # (x, y) mm vertices of the Euler walk, start … end


@dataclass(slots=True)
class _SubAisle:
    """Required points of one sub-aisle, bottom to top, and the options to serve them."""

    ys: list[int]  # distinct y (mm) of required points
    options: dict[Option, tuple[int, tuple[int, ...]]]  # option -> (cost, copies per segment)


@dataclass(slots=True)
class _Column:
    x: int
    aisle: int | None
    subs: list[_SubAisle | None]  # None: no vertical travel possible (blocked, virtual)
    node_req: tuple[int, ...]  # requirement per cross-aisle node
    required: bool  # holds a pick or a required node


# --------------------------------------------------------------------------- transitions


class _Transitions:
    """Interned frontier states and memoised transitions for one number of nodes.

    States are numbered densely from 0 (``ids``), so the DP keeps its costs in lists
    indexed by state number, and every transition table is a list indexed by state
    number as well (-1 / None = not yet computed), with an inverse (next state ->
    previous states) that the walk reconstruction uses instead of back-pointers.
    Transitions depend on no instance data, so the tables only ever gain entries
    and never change an answer; interning and growing the tables happen under a
    lock, a table entry is published only after its inverse, and a caller only
    ever indexes with numbers whose tables were grown before the number was
    handed out.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: list[State] = []
        self.ids: dict[State, int] = {}
        self.dom: list[tuple[int, ...] | None] = []
        self.vert: dict[tuple[int, Option], list[int]] = {}
        self.vinv: dict[tuple[int, Option], dict[int, list[int]]] = {}
        self.horiz: dict[
            tuple[tuple[int, ...], bool], list[tuple[tuple[int, int], ...] | None]
        ] = {}
        self.hinv: dict[
            tuple[tuple[int, ...], bool], dict[int, list[tuple[int, int, tuple[int, ...]]]]
        ] = {}

    def intern(self, state: State) -> int:
        sid = self.ids.get(state)
        if sid is not None:
            return sid
        with self.lock:
            sid = self.ids.get(state)
            if sid is None:
                sid = len(self.states)
                for vt in self.vert.values():
                    vt.append(-1)
                for ht in self.horiz.values():
                    ht.append(None)
                self.dom.append(None)
                self.states.append(state)
                self.ids[state] = sid
            return sid

    def dominators(self, sid: int) -> tuple[int, ...]:
        """States with the same degree classes whose components are coarser.

        Whatever completes the finer state completes the coarser one at the same
        cost (joining components only relaxes the connectivity conditions), so a
        coarser state that is no dearer makes the finer one redundant.
        """
        found = self.dom[sid]
        if found is None:
            found = tuple(self.intern(c) for c in _coarsenings(self.states[sid]))
            self.dom[sid] = found
        return found

    def vtable(self, b: int, opt: Option) -> list[int]:
        table = self.vert.get((b, opt))
        if table is None:
            with self.lock:
                self.vinv.setdefault((b, opt), {})
                table = self.vert.setdefault((b, opt), [-1] * len(self.states))
        return table

    def htable(self, req: tuple[int, ...], last: bool) -> list[tuple[tuple[int, int], ...] | None]:
        table = self.horiz.get((req, last))
        if table is None:
            with self.lock:
                self.hinv.setdefault((req, last), {})
                table = self.horiz.setdefault((req, last), [None] * len(self.states))
        return table

    def vfill(self, table: list[int], sid: int, b: int, opt: Option) -> int:
        ns = self.intern(_vstep(self.states[sid], b, opt))
        self.vinv[(b, opt)].setdefault(ns, []).append(sid)
        table[sid] = ns
        return ns

    def hfill(
        self,
        table: list[tuple[tuple[int, int], ...] | None],
        sid: int,
        req: tuple[int, ...],
        last: bool,
    ) -> tuple[tuple[int, int], ...]:
        inv = self.hinv[(req, last)]
        out = []
        for ns, copies, hs in _htrans(self.states[sid], req, last):
            nid = -1 if ns == _CLOSED else self.intern(ns)
            if nid >= 0:
                inv.setdefault(nid, []).append((sid, copies, hs))
            out.append((nid, copies))
        found = tuple(out)
        table[sid] = found
        return found


_MEMOS: dict[int, _Transitions] = {}
_MEMOS_LOCK = threading.Lock()


def _memo(n_nodes: int) -> _Transitions:
    memo = _MEMOS.get(n_nodes)
    if memo is None:
        with _MEMOS_LOCK:
            memo = _MEMOS.setdefault(n_nodes, _Transitions())
    return memo


def _canon(codes: Iterable[int]) -> State:
    names: dict[int, int] = {}
    out = []
    for c in codes:
        if c == 0:
            out.append(0)
        else:
            lab = names.setdefault(c // 3, len(names))
            out.append(3 * lab + c % 3)
    return tuple(out)


def _coarsenings(state: State) -> list[State]:
    """Every state obtained by joining two or more components of ``state``."""
    labels = sorted({c // 3 for c in state if c})
    out: set[State] = set()

    def merge(assign: dict[int, int], k: int) -> None:
        if k == len(labels):
            if len(set(assign.values())) < len(labels):
                out.add(_canon(3 * assign[c // 3] + c % 3 if c else 0 for c in state))
            return
        for target in {*assign.values(), labels[k]}:
            merge({**assign, labels[k]: target}, k + 1)

    merge({}, 0)
    return sorted(out)


def _bump(code: int, copies: int, label: int) -> int:
    if copies == 0:
        return code
    if code == 0:
        return 3 * label + (1 if copies % 2 else 2)
    odd = (code % 3 == 1) != (copies % 2 == 1)
    return 3 * (code // 3) + (1 if odd else 2)


def _vstep(state: State, b: int, opt: Option) -> State:
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
    """Copies of the cross-aisle segment leaving a node so its final degree is legal."""
    if last:
        ok = (
            (req == _FREE and cls != 1) or (req == _EVEN and cls == 2) or (req == _ODD and cls == 1)
        )
        return (0,) if ok else ()
    if req == _ODD:
        return (1,) if cls != 1 else (0, 2)
    if cls == 1:
        return (1,)
    if cls == 0:
        # a spur (two copies out of an untouched node) is a dead end, never part of
        # a shortest walk unless that node must be visited (a depot on an empty column)
        return (2,) if req == _EVEN else (0,)
    return (0, 2)


def _htrans(
    state: State, req: tuple[int, ...], last: bool
) -> list[tuple[State, int, tuple[int, ...]]]:
    """All ways to leave this column: (next frontier or _CLOSED, copies, copies per node)."""
    choices = [_allowed(c % 3 if c else 0, r, last) for c, r in zip(state, req, strict=True)]
    labels = {c // 3 for c in state if c}
    best: dict[State, tuple[int, tuple[int, ...]]] = {}
    for hs in itertools.product(*choices):
        total = sum(hs)
        if total == 0:
            if not labels:
                nxt: State = state
            elif len(labels) == 1:
                nxt = _CLOSED
            else:
                continue
        else:
            carried = {c // 3 for c, h in zip(state, hs, strict=True) if c and h}
            if carried != labels:
                continue  # a component would be cut off from the rest of the tour
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
        if nxt not in best or total < best[nxt][0]:
            best[nxt] = (total, hs)
    return [(s, t, hs) for s, (t, hs) in best.items()]


# --------------------------------------------------------------------------- sub-aisle options


def _classic_options(ts: list[int], length: int) -> dict[Option, tuple[int, tuple[int, ...]]]:
    """Ratliff–Rosenthal options for picks at offsets ``ts`` (sorted, 0 < t < length)."""
    m = len(ts)
    if m == 0:
        return {(0, 0, 0): (0, ()), (1, 1, 1): (length, (1,)), (2, 2, 1): (2 * length, (2,))}
    opts: dict[Option, tuple[int, tuple[int, ...]]] = {
        (1, 1, 1): (length, (1,) * (m + 1)),
        (2, 2, 1): (2 * length, (2,) * (m + 1)),
        (2, 0, 0): (2 * ts[-1], (2,) * m + (0,)),
        (0, 2, 0): (2 * (length - ts[0]), (0,) + (2,) * m),
    }
    if m >= 2:
        gap, k = max((ts[i + 1] - ts[i], i + 1) for i in range(m - 1))
        opts[(2, 2, 0)] = (2 * (length - gap), (2,) * k + (0,) + (2,) * (m - k))
    return opts


def _general_options(
    points: list[tuple[int, int]], length: int, isolated: bool = False
) -> dict[Option, tuple[int, tuple[int, ...]]]:
    """Cheapest copies per segment for points (offset, _EVEN/_ODD), by option.

    Exact small DP along the sub-aisle; with ``isolated`` it returns instead the
    cheapest walk that touches neither end (key (0, 0, 0)), for a tour that lives
    entirely inside this sub-aisle.
    """
    bounds = [0, *(t for t, _ in points), length]
    segs = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
    # state: (first copies, last copies, zero seen, in a run detached from the bottom,
    # closed detached runs) -> (cost, pattern)
    cur: dict[tuple[int, int, bool, bool, int], tuple[int, tuple[int, ...]]] = {}
    for m in (0, 1, 2):
        cur[(m, m, m == 0, False, 0)] = (m * segs[0], (m,))
    for k in range(1, len(segs)):
        need = points[k - 1][1]
        nxt: dict[tuple[int, int, bool, bool, int], tuple[int, tuple[int, ...]]] = {}
        for (m0, last, zero, detached, closed), (cost, pat) in cur.items():
            for m in (0, 1, 2):
                deg = last + m
                if deg == 0 or (deg % 2 == 1) != (need == _ODD):
                    continue
                det, clo = detached, closed
                if last and not m and detached:
                    det, clo = False, closed + 1
                elif not last and m:
                    det = True
                if clo > 1:
                    continue
                skey = (m0, m, zero or m == 0, det, clo)
                val = (cost + m * segs[k], (*pat, m))
                if skey not in nxt or val[0] < nxt[skey][0]:
                    nxt[skey] = val
        cur = nxt
    out: dict[Option, tuple[int, tuple[int, ...]]] = {}
    for (m0, last, zero, detached, closed), val in cur.items():
        if isolated:
            if closed == 1 and m0 == 0 and last == 0 and not detached:
                key: Option = (0, 0, 0)
            else:
                continue
        elif closed:
            continue
        else:
            key = (m0, last, 0 if zero else 1)
        if key not in out or val[0] < out[key][0]:
            out[key] = val
    return out


# --------------------------------------------------------------------------- columns


def _requirements(
    problem: BlockProblem,
) -> tuple[dict[tuple[int, int, int], int], dict[tuple[int, int], int]]:
    """Required interior points {(x, block, y): req} and nodes {(x, cross): req}."""
    points: dict[tuple[int, int, int], int] = {}
    nodes: dict[tuple[int, int], int] = {}
    for pick in problem.picks:
        s = pick.spot
        assert s.block is not None
        points.setdefault((s.x, s.block, s.y), _EVEN)
    start, end = problem.start, problem.end
    ends = [start] if start == end else [start, end]
    req = _EVEN if start == end else _ODD
    for s in ends:
        if s.block is not None:
            points[(s.x, s.block, s.y)] = req
        else:
            assert s.cross is not None
            nodes[(s.x, s.cross)] = req
    return points, nodes


def _columns(problem: BlockProblem) -> list[_Column]:
    lay = problem.layout
    blocked = problem.blocked
    points, nodes = _requirements(problem)
    xs_req = [x for x, _, _ in points] + [x for x, _ in nodes]
    lo_req, hi_req = min(xs_req), max(xs_req)
    aisle_xs = [lay.aisle_x(i) for i in range(lay.aisles)]
    is_free = [
        not blocked or all((i, b) not in blocked for b in range(lay.blocks))
        for i in range(lay.aisles)
    ]
    # A walk never needs to leave [lo, hi] when lo and hi are fully open aisles:
    # clamping x to that range keeps every move legal and shortens the walk.
    left = [x for x, ok in zip(aisle_xs, is_free, strict=True) if ok and x <= lo_req]
    right = [x for x, ok in zip(aisle_xs, is_free, strict=True) if ok and x >= hi_req]
    lo = max(left) if left else min([*aisle_xs, lo_req])
    hi = min(right) if right else max([*aisle_xs, hi_req])
    xs = sorted({x for x in aisle_xs if lo <= x <= hi} | {x for x, _ in nodes})
    by_sub: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (x, b, y), r in points.items():
        by_sub.setdefault((x, b), []).append((y - b * lay.block_length, r))
    with_points = {x for x, _ in by_sub}
    with_nodes = {x for x, _ in nodes}
    aisles: list[int | None] = []
    plain: list[bool] = []
    absorber: list[bool] = []
    for x in xs:
        aisle = x // lay.pitch if x % lay.pitch == 0 and 0 <= x // lay.pitch < lay.aisles else None
        aisles.append(aisle)
        open_ = aisle is not None and is_free[aisle]
        absorber.append(open_)
        plain.append(open_ and x not in with_points and x not in with_nodes)
    empty = _empty_options(lay.block_length)
    cols: list[_Column] = []
    for k in _kept_columns(plain, absorber):
        x, aisle = xs[k], aisles[k]
        subs: list[_SubAisle | None] = []
        for b in range(lay.blocks):
            if aisle is None or (aisle, b) in blocked:
                subs.append(None)
                continue
            pts = by_sub.get((x, b))
            if not pts:
                subs.append(_SubAisle([], empty))
                continue
            pts.sort()
            ts = [t for t, _ in pts]
            if all(r == _EVEN for _, r in pts):
                opts = _classic_options(ts, lay.block_length)
            else:
                opts = _general_options(pts, lay.block_length)
            subs.append(_SubAisle(ts, opts))
        req = tuple(nodes.get((x, c), _FREE) for c in range(lay.blocks + 1))
        required = any(r != _FREE for r in req) or any(s is not None and s.ys for s in subs)
        cols.append(_Column(x, aisle, subs, req, required))
    return cols


_EMPTY_OPTIONS: dict[int, dict[Option, tuple[int, tuple[int, ...]]]] = {}


def _empty_options(length: int) -> dict[Option, tuple[int, tuple[int, ...]]]:
    """The options of an empty sub-aisle (shared between calls: never mutated)."""
    found = _EMPTY_OPTIONS.get(length)
    if found is None:
        found = _EMPTY_OPTIONS.setdefault(length, _classic_options([], length))
    return found


def _kept_columns(plain: list[bool], absorber: list[bool]) -> list[int]:
    """The columns the DP sweeps: every one but the empty aisles a neighbour stands in for.

    A *plain* column is an aisle with nothing to visit and no blocked sub-aisle; an
    *absorber* is an aisle with no blocked sub-aisle. Take an optimal tour subgraph
    and the vertical segments V of one plain column c, with h_L / h_R the copies of
    the cross-aisle segments on its left / right. Moving V one column to the right
    turns the copies right of c into h_L (every node of c keeps an even degree,
    the degree parities and the connections of the neighbour are unchanged,
    segments with 3 or 4 copies lose 2) and changes the length by
    dx · (|h_L| - |h_R|); moving it left changes it by the opposite amount, so one
    direction never lengthens the walk. Pushed that way until V meets other
    vertical segments, every plain column of a run between two absorbers ends up
    with none, and an absorber's sub-aisle absorbs one or two traversals into one
    of its own options (e.g. from the bottom + once = once, once + once = twice).
    So some optimal tour walks straight through such a run, and the run can be
    left out: the cross-aisle step then spans the whole gap. A run next to a
    column that cannot absorb (a virtual column, a blocked sub-aisle, the end of
    the layout) keeps its column on that side.
    """
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


# --------------------------------------------------------------------------- solver


def _grow(costs: list[int], sid: int) -> None:
    """Make room for a state numbered while this call ran."""
    if sid >= len(costs):
        costs.extend([_INF] * (sid + 1 - len(costs)))


def _cost_at(costs: list[int], sid: int) -> int:
    return costs[sid] if sid < len(costs) else _INF


def _prune(memo: _Transitions, costs: list[int], active: list[int]) -> list[int]:
    """Drop states a coarser, no dearer state makes redundant (see dominators)."""
    known = memo.dom
    inf = _INF
    for sid in active:
        doms = known[sid]
        if doms is None:
            doms = memo.dominators(sid)
            if doms:
                _grow(costs, max(doms))
        if doms:
            c = costs[sid]
            for d in doms:
                if costs[d] <= c:
                    costs[sid] = inf
                    break
    return [sid for sid in active if costs[sid] < inf]


@dataclass(slots=True)
class _Sweep:
    """The cost of every state after every step, and where the best tour closes."""

    history: list[list[int]]  # history[k][state]: cost after k steps (_INF: absent)
    steps: list[tuple[int, int]]  # (column, block) of a vertical step, (column, -1) horizontal
    best: int
    best_at: tuple[int, int, int]  # (k, state, column): closes from history[k][state]


def _sweep(memo: _Transitions, cols: list[_Column], n_nodes: int) -> _Sweep:
    """The forward DP: costs as lists indexed by state number, one list per step."""
    req_after = [False] * len(cols)
    for j in range(len(cols) - 2, -1, -1):
        req_after[j] = req_after[j + 1] or cols[j + 1].required
    inf = _INF  # a local: the loops below run thousands of times per call
    zero = memo.intern((0,) * n_nodes)
    cur = [inf] * len(memo.states)
    cur[zero] = 0
    active = [zero]  # the states of finite cost in cur
    history = [cur]
    steps: list[tuple[int, int]] = []
    best, best_at = inf, (-1, zero, 0)
    vtable, vfill = memo.vtable, memo.vfill

    for j, col in enumerate(cols):
        for b, sub in enumerate(col.subs):
            if sub is None:
                continue
            opts = sub.options
            if not sub.ys:
                # an empty sub-aisle: walk none of it (every state stays), once or twice
                t1, t2 = vtable(b, _ONCE), vtable(b, _TWICE)
                c1, c2 = opts[_ONCE][0], opts[_TWICE][0]
                nxt = cur[:]
                nact = active[:]
                for sid in active:
                    c = cur[sid]
                    ns = t1[sid]
                    if ns < 0:
                        ns = vfill(t1, sid, b, _ONCE)
                        _grow(nxt, ns)
                    nc = c + c1
                    old = nxt[ns]
                    if nc < old:
                        nxt[ns] = nc
                        if old == inf:
                            nact.append(ns)
                    ns = t2[sid]
                    if ns < 0:
                        ns = vfill(t2, sid, b, _TWICE)
                        _grow(nxt, ns)
                    nc = c + c2
                    old = nxt[ns]
                    if nc < old:
                        nxt[ns] = nc
                        if old == inf:
                            nact.append(ns)
            else:
                nxt = [inf] * len(cur)
                nact = []
                for opt, (ocost, _) in opts.items():
                    table = vtable(b, opt)
                    for sid in active:
                        ns = table[sid]
                        if ns < 0:
                            ns = vfill(table, sid, b, opt)
                            _grow(nxt, ns)
                        nc = cur[sid] + ocost
                        old = nxt[ns]
                        if nc < old:
                            nxt[ns] = nc
                            if old == inf:
                                nact.append(ns)
            cur, active = nxt, nact
            history.append(cur)
            steps.append((j, b))
        last = j == len(cols) - 1
        dx = 0 if last else cols[j + 1].x - col.x
        closable = not req_after[j]
        htable = memo.htable(col.node_req, last)
        nxt = [inf] * len(cur)
        nact = []
        for sid in active:
            trans = htable[sid]
            if trans is None:
                trans = memo.hfill(htable, sid, col.node_req, last)
                for ns, _ in trans:
                    _grow(nxt, ns)
            c = cur[sid]
            for ns, copies in trans:
                if ns < 0:
                    if closable and c < best:
                        best, best_at = c, (len(history) - 1, sid, j)
                    continue
                nc = c + copies * dx
                old = nxt[ns]
                if nc < old:
                    nxt[ns] = nc
                    if old == inf:
                        nact.append(ns)
        # prune after the cross-aisle step only: there it pays for itself
        active = _prune(memo, nxt, nact)
        cur = nxt
        history.append(cur)
        steps.append((j, -1))
    return _Sweep(history, steps, best, best_at)


def solve_blocks(problem: BlockProblem) -> BlockSolution:
    """The provably shortest walk start → every pick → end (start = end = depot by default)."""
    lay = problem.layout
    if not problem.picks and problem.start == problem.end:
        here = problem.start
        return BlockSolution(0, (), ((here.x, here.y),))
    top = _top_cross_aisle(problem)
    if top < lay.blocks:
        # Nothing to visit above cross aisle `top`: clamping a walk's y to it keeps
        # every move legal (cross aisles span the floor) and never lengthens it.
        problem = dataclasses.replace(
            problem,
            layout=dataclasses.replace(lay, blocks=top),
            blocked=frozenset((a, b) for a, b in problem.blocked if b < top),
        )
        lay = problem.layout
    cols = _columns(problem)
    memo = _memo(lay.blocks + 1)
    while True:
        known = len(memo.states)
        try:
            sweep = _sweep(memo, cols, lay.blocks + 1)
            break
        except IndexError:
            # another thread numbered a state after this sweep sized its lists:
            # sweep again (the tables only grow, so this ends)
            if len(memo.states) == known:
                raise

    iso = _isolated_candidate(problem)
    best = sweep.best
    if best >= _INF and iso is None:
        raise RoutingProblemError(
            "blocked: the blocked sub-aisles cut a pick, the start or the end off the route"
        )
    if iso is not None and iso[0] < best:
        return _rebuild_isolated(problem, iso[0], iso[1])
    vchoice, hchoice = _choices(memo, cols, sweep)
    return _rebuild(problem, cols[: sweep.best_at[2] + 1], vchoice, hchoice, best)


def _choices(
    memo: _Transitions, cols: list[_Column], sweep: _Sweep
) -> tuple[dict[tuple[int, int], Option], dict[int, tuple[int, ...]]]:
    """Back from the best closing state: a choice of every step consistent with the costs.

    A state's cost after a step is the minimum over its predecessors, so some
    predecessor (from the inverse transition tables) plus its move cost equals it.
    """
    history = sweep.history
    vchoice: dict[tuple[int, int], Option] = {}
    hchoice: dict[int, tuple[int, ...]] = {}
    k, s, _ = sweep.best_at
    for idx in range(k, 0, -1):
        prev, here = history[idx - 1], history[idx][s]
        j, b = sweep.steps[idx - 1]
        found = False
        if b >= 0:
            sub = cols[j].subs[b]
            assert sub is not None
            if not sub.ys and _cost_at(prev, s) == here:
                vchoice[(j, b)] = _NONE
                continue
            for opt, (ocost, _) in sub.options.items():
                if opt == _NONE:
                    continue
                for sid in memo.vinv[(b, opt)].get(s, ()):
                    if _cost_at(prev, sid) + ocost == here:
                        vchoice[(j, b)], s, found = opt, sid, True
                        break
                if found:
                    break
        else:
            dx = cols[j + 1].x - cols[j].x
            for sid, copies, hs in memo.hinv[(cols[j].node_req, False)].get(s, ()):
                if _cost_at(prev, sid) + copies * dx == here:
                    hchoice[j], s, found = hs, sid, True
                    break
        assert found, "no predecessor matches the cost"
    return vchoice, hchoice


def _top_cross_aisle(problem: BlockProblem) -> int:
    """The highest cross aisle a shortest walk may need (at least 1)."""
    top = 1
    for s in [p.spot for p in problem.picks] + [problem.start, problem.end]:
        if s.block is not None:
            top = max(top, s.block + 1)
        elif s.cross is not None:
            top = max(top, s.cross)
    return top


def _isolated_candidate(problem: BlockProblem) -> tuple[int, tuple[int, ...]] | None:
    """A walk that never leaves one sub-aisle, when start, end and picks all lie inside it."""
    spots = [p.spot for p in problem.picks] + [problem.start, problem.end]
    first = spots[0]
    if first.block is None or any(s.block != first.block or s.x != first.x for s in spots):
        return None
    points, _ = _requirements(problem)
    lay = problem.layout
    base = first.block * lay.block_length
    pts = sorted((y - base, r) for (_, _, y), r in points.items())
    opts = _general_options(pts, lay.block_length, isolated=True)
    if (0, 0, 0) not in opts:
        return None
    return opts[(0, 0, 0)]


# --------------------------------------------------------------------------- walk


def _rebuild_isolated(problem: BlockProblem, cost: int, pattern: tuple[int, ...]) -> BlockSolution:
    lay = problem.layout
    first = problem.start
    assert first.block is not None
    base = first.block * lay.block_length
    points, _ = _requirements(problem)
    ys = [base, *sorted(y for (_, _, y) in points), base + lay.block_length]
    coords = [(first.x, y) for y in ys]
    edges = [(i, i + 1) for i, m in enumerate(pattern) for _ in range(m)]
    return _euler_solution(problem, coords, edges, cost)


def _rebuild(
    problem: BlockProblem,
    cols: list[_Column],
    vchoice: dict[tuple[int, int], Option],
    hchoice: dict[int, tuple[int, ...]],
    cost: int,
) -> BlockSolution:
    lay = problem.layout
    n_nodes = lay.blocks + 1
    coords: list[tuple[int, int]] = []
    for col in cols:
        coords.extend((col.x, c * lay.block_length) for c in range(n_nodes))
    edges: list[tuple[int, int]] = []
    for (j, b), opt in vchoice.items():
        sub = cols[j].subs[b]
        assert sub is not None
        _, pattern = sub.options[opt]
        chain = [j * n_nodes + b]
        for t in sub.ys:
            chain.append(len(coords))
            coords.append((cols[j].x, b * lay.block_length + t))
        chain.append(j * n_nodes + b + 1)
        for i, m in enumerate(pattern):
            edges.extend([(chain[i], chain[i + 1])] * m)
    for j, hs in hchoice.items():
        for c, h in enumerate(hs):
            edges.extend([(j * n_nodes + c, (j + 1) * n_nodes + c)] * h)
    return _euler_solution(problem, coords, edges, cost)


def _euler_solution(
    problem: BlockProblem, coords: list[tuple[int, int]], edges: list[tuple[int, int]], cost: int
) -> BlockSolution:
    where = {xy: i for i, xy in enumerate(coords)}
    start = where[(problem.start.x, problem.start.y)]
    length = sum(
        abs(coords[u][0] - coords[v][0]) + abs(coords[u][1] - coords[v][1]) for u, v in edges
    )
    assert length == cost, (length, cost)
    walk = [coords[v] for v in euler_walk(len(coords), edges, start)] if edges else [coords[start]]
    at: dict[tuple[int, int], list[int]] = {}
    for i, pick in enumerate(problem.picks):
        at.setdefault((pick.spot.x, pick.spot.y), []).append(i)
    sequence: list[int] = []
    for xy in walk:
        found = at.pop(xy, None)
        if found:
            sequence.extend(found)
    assert not at, "the tour subgraph misses a pick"
    return BlockSolution(cost, tuple(sequence), tuple(walk))


def euler_walk(n: int, edges: list[tuple[int, int]], start: int) -> list[int]:
    """Hierholzer: an Euler walk from ``start`` over an undirected multigraph (connected)."""
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for e, (u, v) in enumerate(edges):
        adj[u].append((v, e))
        adj[v].append((u, e))
    for lst in adj:
        lst.reverse()  # taken from the end: each vertex's edges in input order
    used = [False] * len(edges)
    stack = [start]
    out: list[int] = []
    while stack:
        lst = adj[stack[-1]]
        while lst and used[lst[-1][1]]:
            lst.pop()
        if lst:
            w, e = lst.pop()
            used[e] = True
            stack.append(w)
        else:
            out.append(stack.pop())
    out.reverse()
    assert all(used), "tour subgraph is not connected"
    return out
