"""The daemon's cart proposer: which open tasks ride on the cart a picker starts.

Two halves around the pure :mod:`edge.batching.online`:

- :meth:`CartProposer.propose` — on the tour planner's thread, with a read
  snapshot, when a picker starts a cart: reads the pool
  (:mod:`edge.picking.pool`) and asks :func:`~edge.batching.online.propose`
  for the cart, reusing the background partition while it still holds (a
  cache hit costs the pool read only) and searching within
  ``carts.propose_ms`` otherwise — in the *searcher*, a process of its own
  at nice 5, so that the ~100 ms of pure-Python search never holds the
  daemon's GIL while other pickers' scans wait (measured by ``bench/floor.py
  --carts``: in-process, scans sent during a START had p99 466 ms against
  115 ms otherwise, and STARTs queued behind one another); in the daemon only
  when the searcher is not running or failed. Thread-safe. It returns a proposal, never
  takes a task: the tour start checks and marks the tasks in its write
  transaction, so a task another picker holds is never started twice.
- :meth:`CartProposer.run` — a daemon component: every ``carts.improve_s``,
  when the pool (or which of its tasks are overdue) changed since the last
  time, reads it on a reader thread and runs
  :func:`~edge.batching.online.improve` for ``carts.improve_ms`` in ONE
  worker process at the lowest CPU priority (``nice`` 19), so the search
  never competes with the scan path on a 2-core box. The worker is armed
  with ``PR_SET_PDEATHSIG`` = SIGKILL: a ``kill -9`` of the daemon takes it
  along. It is started by :meth:`run` (only when carts are enabled and
  ``improve_s`` > 0) and stopped when :meth:`run` ends or :meth:`close` is
  called.

Counters for metrics are plain attributes (``proposals``, ``cache_hits``,
``searches``, ``improvements``, ``last_propose_ms``, ``last_improve_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.config import CartsConfig
from edge.picking.queries import Reads, snapshot
from edge.store.db import Store, now_ms

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from edge.batching.online import CartRules, Partition, PoolTask, Proposal

# The batching engine, multiprocessing and ctypes are imported where first
# needed: a box without carts imports this module (the wiring does) but never
# builds a proposer, and they cost its idle daemon ~1.6 MB (bench/idle.py).

log = logging.getLogger(__name__)

#: the worker's niceness: the background search yields to everything else
WORKER_NICE = 19
#: the searcher's: a START waits for it, but the scan path still goes first
SEARCHER_NICE = 5
#: linux/prctl.h
PR_SET_PDEATHSIG = 1
#: how long a START waits for the searcher beyond its budget before searching itself
SEARCH_GRACE_S = 1.0
#: how often run() checks the searcher when there is no background improvement
SEARCHER_CHECK_S = 5.0
#: how long close() gives the worker to go after SIGTERM before SIGKILL
STOP_GRACE_S = 2.0


def _worker_init(parent: int, nice: int = WORKER_NICE) -> None:
    """In a worker, before any job: die with the daemon, yield the CPU."""
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the daemon died before the signal was armed
        os._exit(1)
    os.nice(nice)
    # the daemon's SIGINT (a terminal's ^C) is the daemon's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def rules_of(carts: CartsConfig) -> CartRules:
    from edge.batching.online import CartRules

    return CartRules(
        units=carts.units, totes=carts.totes, max_wait_ms=round(carts.max_wait_s * 1000)
    )


class CartProposer:
    name = "cart-proposer"

    def __init__(
        self,
        store: Store,
        layout: dict[str, Any],
        carts: CartsConfig,
        *,
        zone: str | None = None,
        clock: Callable[[], int] = now_ms,
        defer: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.layout = layout
        self.carts = carts
        self.zone = zone
        self.clock = clock
        #: peak protection (edge.peak.PeakGuard.defer): whether the background
        #: improvement ("batching") waits now; a START's search never does
        self.defer = defer
        self.rules = rules_of(carts)
        self._lock = threading.Lock()
        self._partition: Partition | None = None
        self._seen: tuple[tuple[PoolTask, ...], frozenset[str]] | None = None
        self._executor: ProcessPoolExecutor | None = None
        #: where a START's search runs (its own process: the daemon's GIL stays
        #: with the scans); None until started, or after it broke
        self._searcher: ProcessPoolExecutor | None = None
        self._searcher_broke = 0
        # counters (read by metrics; written under _lock)
        self.proposals = 0
        self.cache_hits = 0
        self.searches = 0
        self.improvements = 0
        self.last_propose_ms = 0.0
        self.last_improve_ms = 0.0

    @property
    def background(self) -> bool:
        """Whether :meth:`run` improves proposals in a worker process."""
        return self.carts.enabled and self.carts.improve_s > 0

    @property
    def partition(self) -> Partition | None:
        with self._lock:
            return self._partition

    # ------------------------------------------------------------------ the start of a cart

    def read(self, db: Reads, now: int) -> list[PoolTask]:
        from edge.picking.pool import read_pool

        return read_pool(
            db,
            zone=self.zone,
            limit=self.carts.pool,
            now_ms=now,
            max_wait_ms=self.rules.max_wait_ms,
        )

    def propose(self, db: Reads) -> tuple[str, ...]:
        """The tasks of the cart to start now (empty: no open task). ``db`` is a
        read snapshot (or the write transaction); any thread."""
        from edge.batching import online

        started = time.perf_counter()
        now = self.clock()
        pool = self.read(db, now)
        cached = self.partition
        proposal = online.quick(self.layout, pool, self.rules, now_ms=now, cached=cached)
        if proposal is None:
            proposal = self._search(pool, now, cached)
        with self._lock:
            self.proposals += 1
            self.cache_hits += proposal.how == "cached"
            self.searches += proposal.elapsed_ms > 0
            self.last_propose_ms = (time.perf_counter() - started) * 1000.0
        return proposal.tasks

    def _search(self, pool: list[PoolTask], now: int, cached: Partition | None) -> Proposal:
        """A START's search: in the searcher process when it runs (the daemon's
        GIL stays with the scans while it thinks), here otherwise."""
        from edge.batching import online

        job = functools.partial(
            online.propose,
            self.layout,
            pool,
            self.rules,
            now_ms=now,
            budget_ms=self.carts.propose_ms,
            cached=cached,
        )
        with self._lock:
            searcher = self._searcher
        if searcher is not None:
            try:
                proposal: Proposal = searcher.submit(job).result(
                    timeout=self.carts.propose_ms / 1000.0 + SEARCH_GRACE_S
                )
                return proposal
            except Exception as exc:  # a broken or stuck searcher: search here
                with self._lock:
                    self._searcher_broke += 1
                    first = self._searcher_broke == 1
                    if self._searcher is searcher:
                        self._searcher = None  # run() starts another
                searcher.shutdown(wait=False, cancel_futures=True)
                if first:
                    log.warning("cart searcher failed (%r): searching in the daemon", exc)
        return job()

    # ------------------------------------------------------------------ background

    def _read_snapshot(self, now: int) -> list[PoolTask]:
        with snapshot(self.store.reader().conn) as db:
            return self.read(db, now)

    def _ensure_worker(self) -> ProcessPoolExecutor:
        # Called on the event loop's thread: PR_SET_PDEATHSIG follows the
        # thread that forked the worker, and that thread lives as long as the daemon.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(),),
                )
            return self._executor

    async def warm_up(self) -> int:
        """Start the worker process now (a spawn and its imports take most of a
        second on a small box; not on the first improvement) and return its pid."""
        executor = self._ensure_worker()
        pid: int = await asyncio.get_running_loop().run_in_executor(executor, os.getpid)
        return pid

    async def start_searcher(self) -> int:
        """Start the process a START's search runs in (on the event loop's
        thread, like the worker, for PR_SET_PDEATHSIG); its pid."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._searcher is None:
                self._searcher = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(), SEARCHER_NICE),
                )
            searcher = self._searcher
        pid: int = await asyncio.get_running_loop().run_in_executor(searcher, os.getpid)
        return pid

    def worker_pids(self) -> list[int]:
        """Pids of the worker processes now running (for tests and health)."""
        with self._lock:
            ex = self._executor
        if ex is None:
            return []
        procs = getattr(ex, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.pid is not None and p.is_alive()]

    async def improve_once(self) -> bool:
        """One background improvement when the pool changed; whether it ran."""
        from edge.batching import online

        now = self.clock()
        pool = await asyncio.to_thread(self._read_snapshot, now)
        seen = (tuple(pool), frozenset(t.task for t in pool if online.overdue(t, now, self.rules)))
        if seen == self._seen:
            return False
        if not pool:
            with self._lock:
                self._partition = None
            self._seen = seen
            return False
        executor = self._ensure_worker()
        job = functools.partial(
            online.improve,
            self.layout,
            pool,
            self.rules,
            budget_ms=self.carts.improve_ms,
            now_ms=now,
        )
        started = time.perf_counter()
        partition = await asyncio.get_running_loop().run_in_executor(executor, job)
        with self._lock:
            self._partition = partition
            self.improvements += 1
            self.last_improve_ms = (time.perf_counter() - started) * 1000.0
        self._seen = seen
        return True

    async def run(self) -> None:
        """Run the searcher and improve proposals in the background until
        cancelled (see the module)."""
        if not self.carts.enabled:
            await asyncio.Event().wait()  # nothing to do; a component runs until cancelled
            return
        try:
            await self.start_searcher()
            if self.background:
                await self.warm_up()
            while True:
                if self.background and (self.defer is None or not self.defer("batching")):
                    await self.improve_once()
                with self._lock:
                    lost = self._searcher is None
                if lost:  # it failed: the STARTs meanwhile searched in the daemon
                    await self.start_searcher()
                await asyncio.sleep(self.carts.improve_s if self.background else SEARCHER_CHECK_S)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker and the searcher (a search in progress is
        abandoned). Idempotent."""
        with self._lock:
            executors = [self._executor, self._searcher]
            self._executor = self._searcher = None
        for ex in executors:
            if ex is not None:
                _stop(ex)


def _stop(ex: ProcessPoolExecutor) -> None:
    """Stop ``ex``'s processes: SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(ProcessLookupError, ValueError):
            if p.is_alive():
                p.terminate()
    for p in procs:
        with contextlib.suppress(ValueError):
            p.join(STOP_GRACE_S)
            if p.is_alive():
                p.kill()
                p.join()
    ex.shutdown(wait=True)
