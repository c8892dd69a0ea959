"""The uploader against the real simulator on loopback, row by row of the
sync-v1 answers table, plus back-off, wake-up and pruning."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from sync_helpers import BOX, SECRET, assert_converged, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.codec import Echo, batch_answer, epoch_conflict_answer
from cloud_sync.events import Alert, Severity
from cloud_sync.signing import Signer
from cloud_sync.uploader import Step, Uploader
from edge.store import Store
from edge.store.sync_state import StoreOutbox
from simulators.cloud import CloudSimulator, Faults
from tests.support.mitm import PASS, Forge, Mitm


async def test_200_acks_everything_in_batches(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 120)  # 240 events
    up = uploader(store, client, batch_max_events=50)
    assert await up.send_all() == 240
    assert_converged(sim, store)
    assert sim.stats["batches", "200"] == 5
    assert await up.step() is Step.IDLE


def alerts(store: Store, kind: str) -> list[dict[str, object]]:
    return store.query("SELECT * FROM alerts WHERE kind = ? ORDER BY id", (kind,))


def alert_events(store: Store, kind: str) -> int:
    rows = store.query("SELECT payload FROM outbox WHERE type = 'alert'")
    return sum(1 for r in rows if msgpack.unpackb(r["payload"])["kind"] == kind)


def acked(store: Store) -> int:
    return int(store.query("SELECT acked_seq FROM sync_state")[0]["acked_seq"])


@pytest.mark.parametrize(
    "fault", ["fail_before", "fail_after", "drop_before", "drop_after", "429", "500", "503"]
)
async def test_retryable_answers_are_retried_until_converged(
    store: Store, sim: CloudSimulator, client: SyncClient, fault: str
) -> None:
    write_moves(store, 60)
    sim.batch_faults = Faults(script=[fault, fault, None, fault])
    up = uploader(store, client)
    await up.send_all()
    assert sim.batch_faults.drawn[fault] == 3
    assert_converged(sim, store)
    row = store.query("SELECT last_error, last_error_ms, backoff_s FROM sync_state")[0]
    assert row["last_error_ms"] is not None  # the failures were recorded ...
    assert row["backoff_s"] == 0  # ... and the back-off ended with the ack


async def test_fail_after_commit_is_answered_as_duplicate(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 10)  # 20 events, one batch
    sim.batch_faults = Faults(script=["fail_after"])
    up = uploader(store, client)
    assert await up.step() is Step.RETRY
    assert sim.receiver.acked(BOX, store.epoch) == 20  # applied before the 500
    assert acked(store) == 0  # but the box was not told
    assert await up.step() is Step.SENT  # the resend: 200 with the current mark
    assert_converged(sim, store)
    assert sim.receiver.count(BOX) == 20  # applied once


async def test_timeout_is_retried(store: Store) -> None:
    write_moves(store, 10)
    async with CloudSimulator(SECRET, slow_s=1.0) as sim:
        sim.batch_faults = Faults(script=["slow"])
        async with SyncClient(sim.url, BOX, SECRET, timeout_s=0.2) as client:
            up = uploader(store, client)
            assert await up.step() is Step.RETRY
            assert "timed out" in (up.last_error or "")
            await up.send_all()
            assert_converged(sim, store)


async def test_400_keeps_events_alerts_once_and_backs_off(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 10)
    sim.batch_faults = Faults(script=["400"] * 4)
    up = uploader(store, client)
    for _ in range(4):
        assert await up.step() is Step.RETRY
        assert up.backoff_s > 0
    assert acked(store) == 0
    assert store.query("SELECT count(*) AS n FROM outbox")[0]["n"] == 21  # 20 + the alert
    [alert] = alerts(store, "sync_batch_rejected")
    assert alert["severity"] == "crit" and alert["cleared_ms"] is None
    assert alert_events(store, "sync_batch_rejected") == 1
    await up.send_all()
    assert_converged(sim, store)  # the alert event went up too
    assert alerts(store, "sync_batch_rejected")[0]["cleared_ms"] is not None


async def test_401_wrong_secret_keeps_events_and_alerts_once(
    store: Store, sim: CloudSimulator
) -> None:
    write_moves(store, 5)
    async with SyncClient(sim.url, BOX, "not-the-secret") as wrong:
        up = uploader(store, wrong)
        for _ in range(3):
            assert await up.step() is Step.RETRY
    assert sim.stats["batches", "401"] == 3
    assert sim.receiver.count(BOX) == 0 and acked(store) == 0
    assert len(alerts(store, "sync_unauthorized")) == 1
    async with SyncClient(sim.url, BOX, SECRET) as right:
        await uploader(store, right).send_all()
    assert_converged(sim, store)


async def test_413_halves_the_batch_until_it_fits(store: Store) -> None:
    write_moves(store, 100)
    async with (
        CloudSimulator(SECRET, max_batch_bytes=4096) as sim,
        SyncClient(sim.url, BOX, SECRET) as client,
    ):
        up = uploader(store, client, batch_max_events=500)
        await up.send_all()
        assert sim.stats["batches", "413"] >= 2
        assert_converged(sim, store)


async def test_413_for_one_event_alerts_and_keeps_it(store: Store) -> None:
    with store.transaction() as tx:
        tx.append(Alert(kind="big", severity=Severity.INFO, subject="x" * 8000, detail={}))
    async with (
        CloudSimulator(SECRET, max_batch_bytes=4096) as sim,
        SyncClient(sim.url, BOX, SECRET) as client,
    ):
        up = uploader(store, client)
        steps = [await up.step() for _ in range(4)]
        assert steps[-1] is Step.RETRY
    assert acked(store) == 0
    assert len(alerts(store, "sync_event_too_large")) == 1


async def test_injected_409_with_the_true_mark_is_not_a_gap(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 10)
    sim.batch_faults = Faults(script=["409"])
    up = uploader(store, client)
    assert await up.step() is Step.RETRY
    await up.send_all()
    assert_converged(sim, store)


async def test_409_gap_resends_from_the_clouds_mark(
    store: Store, client: SyncClient, sim: CloudSimulator
) -> None:
    write_moves(store, 30)  # 60 events, acked by the first cloud
    await uploader(store, client).send_all()
    assert acked(store) == 60
    # A cloud that lost everything (restored from an old backup) answers 409 {"acked": 0}.
    async with CloudSimulator(SECRET) as fresh:
        write_moves(store, 5, seed=2)
        async with SyncClient(fresh.url, BOX, SECRET) as c2:
            up = uploader(store, c2, batch_max_events=25)
            await up.send_all()
        assert fresh.stats["batches", "409"] == 1
        assert_converged(fresh, store)
    [alert] = alerts(store, "sync_cloud_behind")
    assert alert["severity"] == "warn"


@pytest.mark.parametrize("fault", ["bad_sig", "unsigned"])
async def test_wrongly_signed_or_unsigned_answers_never_ack(
    store: Store, sim: CloudSimulator, client: SyncClient, fault: str
) -> None:
    write_moves(store, 10)
    sim.batch_faults = Faults(script=[fault] * 5)
    up = uploader(store, client)
    for _ in range(5):
        assert await up.step() is Step.RETRY
    assert sim.receiver.acked(BOX, store.epoch) >= 20  # the cloud applied them (+ alert)...
    assert acked(store) == 0  # ... but the box trusts no such ack
    assert len(alerts(store, "sync_answer_unsigned")) == 1
    await up.send_all()
    assert_converged(sim, store)


async def test_lying_ack_is_an_error_not_an_ack(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 10)
    sim.batch_faults = Faults(script=["lying_ack", "lying_ack"])
    up = uploader(store, client)
    assert await up.step() is Step.RETRY
    assert await up.step() is Step.RETRY
    assert acked(store) == 0
    [alert] = alerts(store, "sync_lying_ack")
    assert alert["severity"] == "crit"
    await up.send_all()
    assert_converged(sim, store)


async def test_events_committed_while_a_batch_is_read_are_not_a_lying_ack(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    """Found by the demo with carts: a scan that commits between the read of
    the outbox's head and the read of its rows put events past the head in the
    batch; the cloud's honest ack of them was taken for a lie (a crit alert)."""
    write_moves(store, 5)
    up = uploader(store, client)
    head = up.outbox.send_state

    def head_then_a_scan() -> Any:
        state = head()
        write_moves(store, 2)  # commits after the head was read, before the rows are
        return state

    up.outbox.send_state = head_then_a_scan  # type: ignore[method-assign]
    assert await up.step() is Step.SENT
    up.outbox.send_state = head  # type: ignore[method-assign]
    assert not alerts(store, "sync_lying_ack")
    assert acked(store) == 14
    await up.send_all()
    assert_converged(sim, store)


async def test_back_off_stays_between_one_second_and_the_cap(store: Store) -> None:
    write_moves(store, 1)
    # a port nobody listens on: every request is refused at once
    async with CloudSimulator(SECRET) as sim:
        url = sim.url
    async with SyncClient(url, BOX, SECRET, timeout_s=0.5) as client:
        up = Uploader(StoreOutbox(store), client, rng=random.Random(3))
        delays = []
        for _ in range(12):
            assert await up.step() is Step.RETRY
            delays.append(up.backoff_s)
    assert all(1.0 <= d <= 60.0 for d in delays)  # ≤ 1 request/s while down, capped
    assert max(delays) >= 30.0  # it grows to near the cap
    state = store.query("SELECT last_error, backoff_s, retry_at_ms FROM sync_state")[0]
    assert state["last_error"].startswith("upload:") and state["backoff_s"] == delays[-1]


async def test_notify_wakes_the_uploader_before_the_poll(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    up = uploader(store, client, poll_interval_s=30.0)
    task = asyncio.create_task(up.run())
    try:
        async with asyncio.timeout(3.0):  # far below the 30 s poll
            await up.idle.wait()  # nothing to send: it sleeps until the poll
            write_moves(store, 3)
            up.notify()
            await up.wait_acked(6)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_converged(sim, store)


async def test_acked_rows_are_pruned_after_retention_unacked_never(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 10)
    await uploader(store, client).send_all()
    write_moves(store, 3, seed=5)  # unacked
    up = uploader(store, client, retention_days=0.0, prune_interval_s=0.0)
    await up._maybe_prune()
    rows = store.query("SELECT seq, acked FROM outbox ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(21, 27))
    assert all(r["acked"] == 0 for r in rows)
    await up.send_all()
    assert sim.receiver.acked(BOX, store.epoch) == 26


async def test_run_can_be_restarted_after_it_ended(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    up = uploader(store, client)
    for batch in range(3):  # as the supervisor restarts a crashed component
        write_moves(store, 2, seed=batch)
        task = asyncio.create_task(up.run())
        async with asyncio.timeout(5):
            await up.wait_acked(4 * (batch + 1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_converged(sim, store)


async def test_drain_lets_the_request_in_flight_finish(store: Store) -> None:
    write_moves(store, 5)
    async with CloudSimulator(SECRET, slow_s=0.3) as sim, SyncClient(sim.url, BOX, SECRET) as c:
        sim.batch_faults = Faults(script=["slow"])
        up = uploader(store, c)
        task = asyncio.create_task(up.run())
        async with asyncio.timeout(5):
            await sim.batch_faults.script_done.wait()  # the slow request is in flight
            await up.drain()  # waits for the slow answer ...
            assert acked(store) == 10  # ... whose ack is stored
            await task  # then run() returns by itself


async def test_drain_ends_an_idle_run_without_waiting_for_the_poll(
    store: Store, client: SyncClient
) -> None:
    up = uploader(store, client, poll_interval_s=30.0)
    task = asyncio.create_task(up.run())
    async with asyncio.timeout(3.0):  # far below the 30 s poll
        await up.idle.wait()
        await up.drain()
        await task


# --------------------------------------------------------------------------- answers
# through a man in the middle (tests/support/mitm.py): what the box acts on


def _echo(batch: Echo | None) -> Echo:
    assert batch is not None, "a batch request"
    return batch


def _conflict(acked: int = 0, *, epoch: str | None = None, at: int | None = None) -> Any:
    def doc(batch: Echo | None) -> dict[str, Any]:
        b = _echo(batch)
        return epoch_conflict_answer(
            acked,
            epoch or b.epoch,
            b.first,
            b.last,
            conflict_at=b.first if at is None else at,
            message="held with other content",
        )

    return doc


def _gap(acked: int = 0, *, epoch: str | None = None, first: int | None = None) -> Any:
    def doc(batch: Echo | None) -> dict[str, Any]:
        b = _echo(batch)
        return batch_answer(acked, epoch or b.epoch, first or b.first, b.last)

    return doc


def _ack(acked: int, *, epoch: str) -> Any:
    def doc(batch: Echo | None) -> dict[str, Any]:
        b = _echo(batch)
        return batch_answer(acked, epoch, b.first, b.last)

    return doc


def _epochs(store: Store) -> int:
    return int(store.query("SELECT count(*) AS n FROM epochs")[0]["n"])


@pytest.fixture
async def via_mitm(sim: CloudSimulator) -> AsyncIterator[tuple[Mitm, SyncClient]]:
    async with Mitm(sim.url) as mitm, SyncClient(mitm.url, BOX, SECRET, timeout_s=2.0) as c:
        yield mitm, c


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(Forge(409, _conflict()), id="409-epoch_conflict"),
        pytest.param(Forge(409, _gap(0)), id="409-gap"),
        pytest.param(Forge(400, {"error": {"code": "malformed"}}), id="400"),
        pytest.param(Forge(400, {"error": {"code": "malformed"}}, forward=False), id="400-alone"),
        pytest.param(Forge(200, _ack(100, epoch="x"), forward=False), id="200"),
    ],
)
async def test_an_unsigned_answer_is_a_transport_failure(
    store: Store,
    sim: CloudSimulator,
    via_mitm: tuple[Mitm, SyncClient],
    forged: Forge,
) -> None:
    """Issue 17, finding 2: a proxy's unsigned 409 started a new epoch (the batch
    the cloud had applied was sent again under it: counted twice), an unsigned gap
    moved the window, an unsigned 400 raised ``crit`` ``sync_batch_rejected``."""
    mitm, client = via_mitm
    write_moves(store, 50)  # 100 events: two batches of 50
    epoch = store.epoch
    mitm.plan.extend([PASS, forged, forged])
    up = uploader(store, client)
    assert await up.step() is Step.SENT
    assert await up.step() is Step.RETRY
    assert await up.step() is Step.RETRY
    assert up.backoff_s > 0
    assert acked(store) == 50  # the forged answers moved nothing ...
    assert store.epoch == epoch and _epochs(store) == 1  # ... started no epoch ...
    for kind in ("sync_batch_rejected", "sync_cloud_behind", "sync_epoch_conflict"):
        assert alerts(store, kind) == [], kind  # ... and raised nothing they claim
    [alert] = alerts(store, "sync_answer_unsigned")  # once for the episode
    assert alert["severity"] == "crit"
    await up.send_all()
    assert_converged(sim, store)  # each event applied once: net stock = the ledger
    assert sim.receiver.epochs(BOX) == [(epoch, acked(store))]
    assert alerts(store, "sync_answer_unsigned")[0]["cleared_ms"] is not None


@pytest.mark.parametrize("signed", [True, False])
async def test_401_keeps_the_events_and_alerts_signed_or_not(
    store: Store, sim: CloudSimulator, via_mitm: tuple[Mitm, SyncClient], signed: bool
) -> None:
    mitm, client = via_mitm
    write_moves(store, 5)
    forged = Forge(
        401, {"error": {"code": "bad_signature"}}, signer=Signer(SECRET) if signed else None
    )
    mitm.plan.extend([forged, forged])
    up = uploader(store, client)
    assert [await up.step(), await up.step()] == [Step.RETRY, Step.RETRY]
    assert acked(store) == 0
    [alert] = alerts(store, "sync_unauthorized")
    assert alert["severity"] == "crit"
    await up.send_all()
    assert_converged(sim, store)


@pytest.mark.parametrize(
    "replayed",
    [
        # a 200 the cloud gave in another epoch, replayed before the batch reaches it
        pytest.param(Forge(200, _ack(100, epoch="old-epoch"), forward=False), id="200-other-epoch"),
        # a 200 recorded before answers echoed: nothing binds it to this batch
        pytest.param(Forge(200, {"acked": 100}, forward=False), id="200-without-echo"),
        # the 200 of another range of this epoch
        pytest.param(
            Forge(200, lambda b: batch_answer(100, _echo(b).epoch, 1, 20), forward=False),
            id="200-other-range",
        ),
        pytest.param(Forge(409, _conflict(epoch="old-epoch")), id="409-conflict-other-epoch"),
        pytest.param(Forge(409, _gap(0, first=10)), id="409-gap-other-range"),
    ],
)
async def test_a_signed_answer_to_another_batch_is_ignored(
    store: Store,
    sim: CloudSimulator,
    via_mitm: tuple[Mitm, SyncClient],
    replayed: Forge,
) -> None:
    """Issue 17, finding 3: a recorded signed answer verified for any later batch
    of any epoch (the path never changes): a 200 replayed into a new epoch marked
    events acked that the cloud never received."""
    mitm, client = via_mitm
    write_moves(store, 50)
    epoch = store.epoch
    signed = Forge(replayed.status, replayed.doc, replayed.forward, signer=Signer(SECRET))
    mitm.plan.extend([PASS, signed, signed])
    up = uploader(store, client)
    assert [await up.step() for _ in range(3)] == [Step.SENT, Step.RETRY, Step.RETRY]
    assert acked(store) == 50  # nothing acked that the cloud did not apply
    assert store.epoch == epoch and _epochs(store) == 1
    assert alerts(store, "sync_cloud_behind") == [] and alerts(store, "sync_epoch_conflict") == []
    [alert] = alerts(store, "sync_answer_mismatch")  # once for the episode
    assert alert["severity"] == "warn"
    assert "not the batch sent" in (up.last_error or "")
    await up.send_all()
    assert_converged(sim, store)
    assert sim.receiver.epochs(BOX) == [(epoch, acked(store))]
    assert alerts(store, "sync_answer_mismatch")[0]["cleared_ms"] is not None


@pytest.mark.parametrize("at", [0, 51, "1"])
async def test_an_epoch_conflict_outside_the_batch_starts_no_epoch(
    store: Store, sim: CloudSimulator, via_mitm: tuple[Mitm, SyncClient], at: Any
) -> None:
    mitm, client = via_mitm
    write_moves(store, 25)  # 50 events, one batch 1..50
    epoch = store.epoch

    def doc(batch: Echo | None) -> dict[str, Any]:
        return {**_conflict()(batch), "conflict_at": at}

    mitm.plan.append(Forge(409, doc, forward=False, signer=Signer(SECRET)))
    up = uploader(store, client)
    assert await up.step() is Step.RETRY
    assert store.epoch == epoch and _epochs(store) == 1
    await up.send_all()
    assert_converged(sim, store)


@pytest.mark.parametrize(("at", "expected"), [(3, 3), (None, None)])
async def test_an_epoch_conflict_hands_conflict_at_to_the_epoch_change(
    store: Store,
    via_mitm: tuple[Mitm, SyncClient],
    monkeypatch: pytest.MonkeyPatch,
    at: int | None,
    expected: int | None,
) -> None:
    mitm, client = via_mitm
    write_moves(store, 5)  # 10 events, one batch

    def doc(batch: Echo | None) -> dict[str, Any]:
        out = _conflict(at=at or 1)(batch)
        if at is None:
            del out["conflict_at"]  # a cloud that does not say
        return out

    mitm.plan.append(Forge(409, doc, forward=False, signer=Signer(SECRET)))
    up = uploader(store, client)
    calls: list[tuple[str, int | None]] = []

    async def new_epoch(
        epoch: str, error: dict[str, Any], *, conflict_at: int | None = None
    ) -> Step:
        calls.append((epoch, conflict_at))
        return Step.SENT

    monkeypatch.setattr(up, "_new_epoch", new_epoch)
    assert await up.step() is Step.SENT
    assert calls == [(store.epoch, expected)]
