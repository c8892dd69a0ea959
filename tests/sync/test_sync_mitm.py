"""A man in the middle between the box and the cloud (issue 17, findings 2 and 3).

A real proxy on loopback (tests/support/mitm.py) sits between the uploader's
client and the cloud simulator and records the cloud's answers, replays them
later (to a later batch, into another epoch), strips their signatures and
injects unsigned or foreign answers. Whatever it does:

- nothing is acked on the box that the cloud did not apply;
- nothing is applied twice: each (epoch, seq) once at the cloud, and the
  cloud's net stock per (sku, location) equals the box's ledger;
- the box keeps its events until a genuine signed answer for them.

Also here, what goes on the wire: the request target is what was signed
(cursor and base-URL prefix included), and a cursor that is not URL-safe is
refused, not re-encoded.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import BOX, SECRET, assert_converged, box_rows, ledger, uploader, write_moves

from cloud_sync.client import BadCursorError, SyncClient
from cloud_sync.codec import Echo, batch_answer, epoch_conflict_answer
from cloud_sync.signing import Signer
from cloud_sync.uploader import Step, Uploader
from edge.store import Store
from simulators.cloud import CloudSimulator
from tests.support.mitm import PASS, Act, Exchange, Forge, Mitm, Replay, Strip

SIGNER = Signer(SECRET)


@pytest.fixture
async def mitm(sim: CloudSimulator) -> AsyncIterator[Mitm]:
    async with Mitm(sim.url) as m:
        yield m


@pytest.fixture
async def via(mitm: Mitm) -> AsyncIterator[SyncClient]:
    async with SyncClient(mitm.url, BOX, SECRET, timeout_s=2.0) as c:
        yield c


@pytest.fixture
def old_store(tmp_path: Path) -> Iterator[Store]:
    """The same box in an earlier life (another database, so another epoch):
    a cloned card, a replaced box, a restore the box started a new epoch for."""
    (tmp_path / "before").mkdir()
    with Store.open(tmp_path / "before" / "box.db", box_id=BOX) as s:
        yield s


def acked(store: Store) -> int:
    return int(store.query("SELECT acked_seq FROM sync_state")[0]["acked_seq"])


def next_seq(store: Store) -> int:
    return int(store.query("SELECT next_seq FROM box")[0]["next_seq"])


def alert_kinds(store: Store) -> set[str]:
    return {r["kind"] for r in store.query("SELECT kind FROM alerts")}


def check(sim: CloudSimulator, *stores: Store) -> None:
    """The invariants, at any moment."""
    for store in stores:
        epoch = store.epoch
        state = store.query("SELECT acked_epoch, acked_seq FROM sync_state")[0]
        mark = state["acked_seq"] if state["acked_epoch"] == epoch else 0
        # nothing acked that the cloud did not apply, as the box holds it
        assert sim.receiver.acked(BOX, epoch) >= mark
        rows = box_rows(store, epoch)
        assert sim.receiver.events(BOX, epoch)[:mark] == rows[:mark]
        # the box keeps every event (nothing is old enough to prune here)
        assert [r["seq"] for r in rows] == list(range(1, next_seq(store)))
        flags = store.query("SELECT seq FROM outbox WHERE epoch = ? AND acked = 1", (epoch,))
        assert max((r["seq"] for r in flags), default=0) <= mark
    # each (epoch, seq) once at the cloud, contiguous from 1
    for epoch, mark in sim.receiver.epochs(BOX):
        assert [e["seq"] for e in sim.receiver.events(BOX, epoch)] == list(range(1, mark + 1))


def net_of(*stores: Store) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for store in stores:
        for key, qty in ledger(store).items():
            total[key] = total.get(key, 0) + qty
    return {k: v for k, v in total.items() if v}


def cloud_net(sim: CloudSimulator) -> dict[tuple[str, str], int]:
    return {k: v for k, v in sim.receiver.net_stock(BOX).items() if v}


def _batch(b: Echo | None) -> Echo:
    assert b is not None, "a batch request"
    return b


def conflict(b: Echo | None, *, epoch: str | None = None) -> dict[str, Any]:
    e = _batch(b)
    return epoch_conflict_answer(
        0, epoch or e.epoch, e.first, e.last, conflict_at=e.first, message="held otherwise"
    )


def gap(b: Echo | None) -> dict[str, Any]:
    e = _batch(b)
    return batch_answer(0, e.epoch, e.first, e.last)


async def steps(up: Uploader, n: int) -> list[Step]:
    return [await up.step() for _ in range(n)]


# --------------------------------------------------------------------------- replays


async def test_answers_recorded_in_an_earlier_epoch_replayed_into_the_new_one_ack_nothing(
    store: Store, old_store: Store, sim: CloudSimulator, mitm: Mitm, via: SyncClient
) -> None:
    """The issue's replay: the proxy records the cloud's signed 200s of one epoch
    and plays them back, in order, to the batches of the next, which it never
    forwards. The answer signature covers status, path and body, and the path
    never changes; before answers echoed their batch, the box took them and
    marked 100 events acked that the cloud never received."""
    write_moves(old_store, 50)  # 100 events: 200s for 1..50 and 51..100 recorded
    await uploader(old_store, via).send_all()
    recorded = mitm.answers(200)
    assert [(x.batch.first, x.batch.last) for x in recorded if x.batch] == [(1, 50), (51, 100)]

    write_moves(store, 50, seed=2)  # the new epoch's 1..100
    assert store.epoch != old_store.epoch
    mitm.plan.extend(Replay(x) for x in recorded * 2)
    up = uploader(store, via)
    assert await steps(up, 4) == [Step.RETRY] * 4
    check(sim, store, old_store)
    assert acked(store) == 0 and sim.receiver.acked(BOX, store.epoch) == 0
    assert "sync_answer_mismatch" in alert_kinds(store)
    assert len(store.query("SELECT * FROM alerts WHERE kind = 'sync_answer_mismatch'")) == 1

    await up.send_all()  # the proxy steps aside: genuine answers
    check(sim, store, old_store)
    assert_converged(sim, store, stock=False)  # the cloud's net stock is both lives'
    assert cloud_net(sim) == net_of(store, old_store)


async def test_a_recorded_epoch_conflict_replayed_later_starts_no_epoch(
    store: Store, sim: CloudSimulator, mitm: Mitm, via: SyncClient
) -> None:
    """A signed ``epoch_conflict`` of another epoch (recorded when a restored box
    really conflicted), replayed after the cloud applied the batch: acted on,
    the batch would move to a new epoch and be applied again."""
    write_moves(store, 50)
    epoch = store.epoch
    mitm.plan.extend(
        [PASS, Forge(409, lambda b: conflict(b, epoch="an-earlier-epoch"), signer=SIGNER)]
    )
    up = uploader(store, via)
    assert await steps(up, 2) == [Step.SENT, Step.RETRY]
    check(sim, store)
    assert store.epoch == epoch
    await up.send_all()
    assert_converged(sim, store)
    assert sim.receiver.epochs(BOX) == [(epoch, next_seq(store) - 1)]


# --------------------------------------------------------------------------- unsigned


async def test_stripped_signatures_ack_nothing_until_a_signed_answer(
    store: Store, sim: CloudSimulator, mitm: Mitm, via: SyncClient
) -> None:
    write_moves(store, 50)
    mitm.plan.extend([Strip()] * 4)  # the cloud applies 1..50; the box is told nothing
    up = uploader(store, via)
    assert await steps(up, 4) == [Step.RETRY] * 4  # so it sends 1..50 again
    check(sim, store)
    assert acked(store) == 0 and sim.receiver.acked(BOX, store.epoch) == 50
    await up.send_all()
    assert_converged(sim, store)


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(Forge(409, conflict), id="epoch_conflict"),
        pytest.param(Forge(409, gap), id="gap"),
        pytest.param(Forge(400, {"error": {"code": "malformed"}}), id="400"),
        pytest.param(Forge(401, {"error": {"code": "bad_signature"}}), id="401"),
    ],
)
async def test_unsigned_answers_after_the_cloud_applied_move_nothing(
    store: Store, sim: CloudSimulator, mitm: Mitm, via: SyncClient, forged: Forge
) -> None:
    """The issue's doubling: the cloud applies a batch, the proxy answers an
    unsigned 409 ``epoch_conflict`` instead, and the box used to send the same
    events again under a new epoch (applied twice)."""
    write_moves(store, 75)  # 150 events, three batches
    epoch = store.epoch
    mitm.plan.extend([PASS, forged, forged, PASS, forged])
    up = uploader(store, via)
    assert await steps(up, 5) == [Step.SENT, Step.RETRY, Step.RETRY, Step.SENT, Step.RETRY]
    check(sim, store)
    assert acked(store) == 100 and store.epoch == epoch
    assert not alert_kinds(store) & {
        "sync_epoch_conflict",
        "sync_cloud_behind",
        "sync_batch_rejected",
    }
    await up.send_all()
    check(sim, store)
    assert_converged(sim, store)
    assert sim.receiver.epochs(BOX) == [(epoch, next_seq(store) - 1)]


# --------------------------------------------------------------------------- all at once


async def test_a_hostile_proxy_at_random_never_costs_an_event_nor_doubles_one(
    store: Store, old_store: Store, sim: CloudSimulator, mitm: Mitm, via: SyncClient
) -> None:
    """Random acts per request (seeded) while the floor keeps writing: pass,
    strip, replay any recorded answer (this epoch's or an earlier life's),
    forge unsigned conflicts, gaps, 400s and 401s, and signed answers of another
    epoch; forwarded or not. The invariants hold after every step, and once the
    proxy steps aside the cloud converges to the box exactly."""
    write_moves(old_store, 20)  # an earlier life of the box: answers to replay
    await uploader(old_store, via, batch_max_events=10).send_all()
    rng = random.Random(17)

    def forged(status: int, doc: Any, *, signed: bool = False) -> Callable[[bool], Act]:
        return lambda fwd: Forge(status, doc, forward=fwd, signer=SIGNER if signed else None)

    kinds: list[Callable[[bool], Act]] = [
        lambda fwd: Strip(),  # forwarded: the cloud applies, the box is told nothing
        forged(409, conflict),
        forged(409, gap),
        forged(400, {"error": {"code": "malformed"}}),
        forged(401, {"error": {"code": "bad_signature"}}),
        forged(409, lambda b: conflict(b, epoch="elsewhere"), signed=True),
        forged(200, lambda b: batch_answer(10**6, "elsewhere", _batch(b).first, _batch(b).last)),
    ]
    drawn: dict[str, int] = {}

    def policy(x: Exchange) -> Act:
        r = rng.random()
        if r < 0.35:
            act: Act = PASS
        elif r < 0.55 and mitm.answers():
            act = Replay(rng.choice(mitm.answers()), forward=rng.random() < 0.5)
        else:
            act = rng.choice(kinds)(rng.random() < 0.6)
        drawn[type(act).__name__] = drawn.get(type(act).__name__, 0) + 1
        return act

    mitm.policy = policy
    up = uploader(store, via, batch_max_events=rng.choice([7, 13, 25]))
    for n in range(250):
        if rng.random() < 0.4:
            write_moves(store, rng.randint(1, 4), seed=n + 100)
        await up.step()
        check(sim, store, old_store)
    assert drawn.keys() >= {"Pass", "Strip", "Replay", "Forge"}, drawn
    assert acked(store) > 0  # genuine answers got through: it made progress under attack

    mitm.policy = None
    await up.send_all()
    check(sim, store, old_store)
    assert_converged(sim, store, stock=False)  # the cloud's net stock is both lives'
    assert [e for e, _ in sim.receiver.epochs(BOX)] == [old_store.epoch, store.epoch]
    assert cloud_net(sim) == net_of(store, old_store)


# --------------------------------------------------------------------------- the wire


@pytest.mark.parametrize("cursor", [None, "p0", "Ab-_.9", ""])
async def test_the_request_target_on_the_wire_is_the_one_signed(
    mitm: Mitm, via: SyncClient, cursor: str | None
) -> None:
    reply = await via.get_changes(cursor, 10)
    [x] = mitm.log
    expected = "/sync/v1/changes?" + ("" if cursor is None else f"cursor={cursor}&") + "limit=10"
    assert x.target == expected
    assert SIGNER.verify_request(x.headers["X-Signature"], "GET", expected, b"")
    assert reply.signed  # and the cloud's answer, signed over the same target, verifies


@pytest.mark.parametrize("cursor", ["p 1", "p/1", "p%201", "p~1", "p+1", "p=1&limit=9", "pé"])
async def test_a_cursor_that_is_not_url_safe_is_refused_not_re_encoded(
    mitm: Mitm, via: SyncClient, cursor: str
) -> None:
    with pytest.raises(BadCursorError, match="URL-safe"):
        await via.get_changes(cursor, 10)
    assert mitm.log == []  # nothing was sent


async def test_a_base_url_prefix_is_signed_as_it_is_sent() -> None:
    async with Mitm(None) as cloud:  # nothing behind it: it answers as the cloud would
        cloud.plan.append(
            Forge(200, lambda b: batch_answer(0, "e", 1, 1), signer=SIGNER, forward=False)
        )
        async with SyncClient(cloud.url + "/edge gw/v1%2Bx/", BOX, SECRET) as c:
            reply = await c.post_batch(b"body")
    [x] = cloud.log
    assert x.target == "/edge%20gw/v1%2Bx/sync/v1/batches"
    assert SIGNER.verify_request(x.headers["X-Signature"], "POST", x.target, b"body")
    assert reply.signed
