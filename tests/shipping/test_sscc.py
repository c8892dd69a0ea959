"""SSCCs the box owns: check digits, the range, and never a serial twice —
across transactions, crashes (SIGKILL), restores from backup and lost marks.

Real SQLite files and a real sync mark beside them; a backup is made with
``edge.store.upkeep.backup_file`` and restored by copying it over the database,
as an operator does.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from biip import ParseError
from biip.sscc import Sscc

import edge.store.syncmark
from cloud_sync.events import StockDelta, StockReason
from edge.config import ShippingConfig
from edge.shipping.sscc import (
    EXHAUSTED_ALERT,
    LOW_ALERT,
    RESERVE_BLOCK,
    Allocator,
    SsccConfigError,
    SsccExhaustedError,
    SsccNotConfiguredError,
    SsccRangeChangeError,
    SsccUnreservedError,
    allocate,
    check_digit,
    configure,
    current,
    format_sscc,
    is_valid,
)
from edge.store import Store, Transaction
from edge.store.syncmark import (
    RESTORE_ALERT,
    SSCC_CLOSED_ALERT,
    SyncMark,
    mark_path,
    read_mark,
)
from edge.store.upkeep import backup_file
from tests.support.processes import ProcessReaper

BOX = "test-box"
ROOT = Path(__file__).resolve().parents[2]
CFG = ShippingConfig(
    gs1_prefix="0614141", sscc_extension=1, sscc_first=1, sscc_last=999_999, sscc_low=10
)
SPACE = "10614141"


def serial(sscc: str, prefix: str = "0614141") -> int:
    return int(sscc[1 + len(prefix) : 17])


def start(store: Store, cfg: ShippingConfig = CFG) -> None:
    """What the daemon does at start: check the mark, take over the range."""
    SyncMark(store).reconcile()
    store.run(lambda tx: configure(tx, cfg))


def close_carton(tx: Transaction, sscc: str) -> None:
    tx.execute(
        "INSERT INTO cartons (order_ref, station, state, sscc, opened_ms, closed_ms) "
        "VALUES ('O-1', 'P1', 'closed', ?, 0, 0)",
        (sscc,),
    )


def take(
    store: Store, n: int = 1, cfg: ShippingConfig = CFG, block: int = RESERVE_BLOCK
) -> list[str]:
    """Close ``n`` cartons, one transaction each, as the packing service does."""
    allocator = Allocator(cfg, block=block)

    def close(tx: Transaction) -> str:
        sscc = allocator(tx, now=1_700_000_000_000)
        close_carton(tx, sscc)
        return sscc

    return [store.run(close) for _ in range(n)]


def open_alerts(store: Store) -> list[str]:
    return [
        r["kind"]
        for r in store.query("SELECT kind FROM alerts WHERE cleared_ms IS NULL ORDER BY id")
    ]


def all_alerts(store: Store) -> list[str]:
    return [r["kind"] for r in store.query("SELECT kind FROM alerts ORDER BY id")]


def reserved(db: Path, space: str = SPACE) -> int | None:
    mark, problem = read_mark(mark_path(db))
    assert mark is not None, problem
    return mark.sscc.get(space)


def snapshot(store: Store) -> tuple[object, ...]:
    """Everything an allocation may touch."""
    return (
        store.query("SELECT * FROM sscc_range"),
        store.query("SELECT * FROM alerts"),
        store.query("SELECT next_seq FROM box"),
        store.query("SELECT count(*) AS n FROM outbox"),
        mark_path(store.path).read_bytes(),
    )


def write_events(store: Store, n: int) -> int:
    """``n`` outbox events; returns the last seq."""
    for i in range(n):
        with store.transaction() as tx:
            last = tx.append(
                StockDelta(
                    sku="SKU-1",
                    location="A01",
                    qty=-1,
                    reason=StockReason.PICK,
                    ref=f"T{i}",
                    lot=None,
                )
            )
    return last


def restore(backup: Path, db: Path) -> None:
    """An operator's restore: the backup over the database, WAL and SHM gone,
    the mark left where it is."""
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, db)


# ---------------------------------------------------------------------- digits


def _mod10(body: str) -> int:
    """The GS1 General Specifications' algorithm, written out (weights 3, 1
    from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def test_the_general_specifications_example() -> None:
    # GS1 General Specifications: (00) 1 0614141 234567890 8
    assert format_sscc(1, "0614141", 234_567_890) == "106141412345678908"
    assert check_digit("10614141234567890") == 8
    assert is_valid("106141412345678908")
    assert not is_valid("106141412345678907")
    assert not is_valid("10614141234567890")
    assert not is_valid("1061414123456789O8")
    parsed = Sscc.parse("106141412345678908")
    assert (parsed.extension_digit, parsed.check_digit) == (1, 8)


@pytest.mark.parametrize("prefix", ["0614141", "40123456", "761234567", "5412345678"])
def test_check_digits_agree_with_biip_and_the_algorithm(prefix: str) -> None:
    rng = random.Random(prefix)
    width = 16 - len(prefix)
    for _ in range(200):
        ext, number = rng.randrange(10), rng.randrange(10**width)
        sscc = format_sscc(ext, prefix, number)
        assert len(sscc) == 18 and sscc.startswith(f"{ext}{prefix}")
        assert int(sscc[-1]) == _mod10(sscc[:-1])
        assert Sscc.parse(sscc).check_digit == int(sscc[-1])  # biip verifies it too
        wrong = sscc[:-1] + str((int(sscc[-1]) + 1) % 10)
        with pytest.raises(ParseError):
            Sscc.parse(wrong)
    with pytest.raises(ValueError, match="does not fit"):
        format_sscc(0, prefix, 10**width)


# ---------------------------------------------------------------------- configure


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"gs1_prefix": "123456"}, "7-10 digits"),
        ({"gs1_prefix": "12345678901"}, "7-10 digits"),
        ({"gs1_prefix": "06141a1"}, "7-10 digits"),
        ({"sscc_first": 10, "sscc_last": 9}, "at most sscc_last"),
        ({"gs1_prefix": "5412345678", "sscc_last": 1_000_000}, "more than 6 digits"),
        ({"gs1_prefix": "0614141", "sscc_last": 1_000_000_000}, "more than 9 digits"),
    ],
)
def test_settings_that_make_no_valid_sscc_are_refused(
    store: Store, changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(SsccConfigError, match=problem) as info:
        store.run(lambda tx: configure(tx, replace(CFG, **changes)))  # type: ignore[arg-type]
    assert info.value.code == "sscc_config_invalid"
    assert store.query("SELECT * FROM sscc_range") == []


def test_the_longest_prefix_leaves_six_serial_digits(store: Store) -> None:
    cfg = replace(CFG, gs1_prefix="5412345678", sscc_first=999_998, sscc_last=999_999)
    start(store, cfg)
    assert take(store, 2, cfg) == [format_sscc(1, "5412345678", n) for n in (999_998, 999_999)]


def test_no_prefix_closes_no_cartons(store: Store) -> None:
    cfg = replace(CFG, gs1_prefix="")
    SyncMark(store).reconcile()
    assert store.run(lambda tx: configure(tx, cfg)) is None
    with pytest.raises(SsccNotConfiguredError):
        take(store, 1, cfg)
    with pytest.raises(SsccNotConfiguredError):
        store.run(lambda tx: allocate(tx, now=0))  # nothing stored either


def test_configure_is_idempotent_and_the_allocator_wants_the_configured_range(store: Store) -> None:
    start(store)
    first = take(store, 3)
    before = snapshot(store)
    start(store)  # a restart with the same settings (the same store: no catch-up)
    assert snapshot(store) == before
    with pytest.raises(SsccNotConfiguredError, match="not the configured one"):
        take(store, 1, replace(CFG, sscc_last=500_000))
    assert [serial(s) for s in first] == [1, 2, 3]


def test_range_changes_never_go_back(store: Store) -> None:
    start(store)
    assert [serial(s) for s in take(store, 5)] == [1, 2, 3, 4, 5]

    # ending the range below what was handed out: refused, nothing changed
    before = snapshot(store)
    with pytest.raises(SsccRangeChangeError, match="up to 5 of 1\\+0614141") as info:
        store.run(lambda tx: configure(tx, replace(CFG, sscc_last=3)))
    assert info.value.code == "sscc_range_refused"
    assert snapshot(store) == before

    # the rest of the reserved block was not handed out: the caught-up
    # database knows (a range may end there)
    assert reserved(store.path) == RESERVE_BLOCK
    # shrinking the end, but not below what may be out: fine, next stays
    cfg = replace(CFG, sscc_last=5_000)
    start(store, cfg)
    assert serial(take(store, 1, cfg)[0]) == 6

    # moving the start forward jumps
    cfg = replace(CFG, sscc_first=10_000, sscc_last=20_000)
    start(store, cfg)
    assert serial(take(store, 1, cfg)[0]) == 10_000

    # a range starting below what was handed out starts past it
    cfg = replace(CFG, sscc_first=1, sscc_last=20_000)
    start(store, cfg)
    assert serial(take(store, 1, cfg)[0]) == 10_001


def test_a_range_configured_before_the_check_trusts_the_mark(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        start(store)
        take(store, 5)
    with Store.open(db, box_id=BOX) as store:  # reopened, configured before the check
        with pytest.raises(SsccRangeChangeError, match="up to 100"):
            store.run(lambda tx: configure(tx, replace(CFG, sscc_last=50)))
        store.run(lambda tx: configure(tx, replace(CFG, sscc_last=500)))
        SyncMark(store).reconcile()
        assert serial(take(store, 1, replace(CFG, sscc_last=500))[0]) == RESERVE_BLOCK + 1


def test_switching_extension_and_back_resumes_past_the_old_serials(store: Store) -> None:
    start(store)
    old = take(store, 3)
    other = replace(CFG, sscc_extension=2)
    start(store, other)
    assert take(store, 2, other) == [format_sscc(2, "0614141", n) for n in (1, 2)]
    start(store)  # back to extension 1: the mark and the cartons remember it
    again = take(store, 1)
    assert serial(again[0]) > RESERVE_BLOCK >= max(serial(s) for s in old)
    # and without the mark's record, the cartons alone are enough
    start(store, other)
    doc = json.loads(mark_path(store.path).read_bytes())
    del doc["sscc"][SPACE]
    mark_path(store.path).write_text(json.dumps(doc))
    start(store)
    assert serial(take(store, 1)[0]) == serial(again[0]) + 1


# ---------------------------------------------------------------------- allocation


def test_allocation_hands_out_the_range_in_order(store: Store) -> None:
    cfg = replace(CFG, sscc_first=41, sscc_last=1_000)
    start(store, cfg)
    got = take(store, 250, cfg)
    assert got == [format_sscc(1, "0614141", n) for n in range(41, 291)]
    assert all(is_valid(s) and len(s) == 18 for s in got)
    assert len(set(got)) == 250
    rng = current(store.reader().conn)
    assert rng is not None and (rng.next, rng.remaining) == (291, 710)


def test_the_mark_covers_every_serial_before_it_is_used_one_write_per_block(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(store)
    assert reserved(store.path) is None  # nothing handed out yet, nothing reserved
    written: list[int] = []  # the high-water of each mark write, as it is written
    real = edge.store.syncmark.write_mark

    def counted(path: Path, mark: edge.store.syncmark.Mark) -> None:
        real(path, mark)
        written.append(mark.sscc[SPACE])

    monkeypatch.setattr(edge.store.syncmark, "write_mark", counted)
    for sscc in take(store, 3 * RESERVE_BLOCK + 7):
        high = reserved(store.path)
        assert high is not None and high >= serial(sscc)
    assert written == [RESERVE_BLOCK * n for n in (1, 2, 3, 4)]
    assert reserved(store.path) == 4 * RESERVE_BLOCK


def test_a_rolled_back_close_gives_its_serial_back(store: Store) -> None:
    start(store)
    take(store, 2)

    class Jammed(Exception):
        """The label printer jams after the SSCC was taken."""

    def jammed(tx: Transaction) -> None:
        with tx.savepoint() as unit:
            close_carton(unit, allocate(unit, now=0))
            raise Jammed

    with pytest.raises(Jammed):
        store.run(jammed)
    assert serial(take(store, 1)[0]) == 3  # nobody saw serial 3 before


def test_exhaustion_refuses_and_changes_nothing(store: Store) -> None:
    cfg = replace(CFG, sscc_first=7, sscc_last=9, sscc_low=0)
    start(store, cfg)
    assert [serial(s) for s in take(store, 3, cfg)] == [7, 8, 9]
    assert open_alerts(store) == [LOW_ALERT, EXHAUSTED_ALERT]  # the last serial says so
    before = snapshot(store)
    for _ in range(3):
        with pytest.raises(SsccExhaustedError, match=r"7\.\.9 is used up") as info:
            take(store, 1, cfg)
        assert info.value.code == "sscc_exhausted"
    assert snapshot(store) == before
    # a new range beyond it reopens, and ends the episode
    cfg = replace(cfg, sscc_last=1_000)
    start(store, cfg)
    assert open_alerts(store) == []
    assert serial(take(store, 1, cfg)[0]) == 10


def test_a_low_range_alerts_once_per_episode(store: Store) -> None:
    cfg = replace(CFG, sscc_first=1, sscc_last=20, sscc_low=5)
    start(store, cfg)
    take(store, 14, cfg)  # 6 left
    assert all_alerts(store) == []
    take(store, 1, cfg)  # 5 left
    assert open_alerts(store) == [LOW_ALERT]
    take(store, 4, cfg)  # 1 left
    assert all_alerts(store) == [LOW_ALERT]
    detail = store.query("SELECT subject FROM alerts")[0]["subject"]
    assert "1..20: 5 serials left" in detail
    cfg = replace(cfg, sscc_last=40)  # 21 left: the episode ends
    start(store, cfg)
    assert open_alerts(store) == []
    take(store, 16, cfg)  # 5 left: a second episode
    assert all_alerts(store) == [LOW_ALERT, LOW_ALERT]
    assert open_alerts(store) == [LOW_ALERT]


def test_concurrent_closes_never_share_an_sscc(tmp_path: Path) -> None:
    """Threads on two stores of one file (two writer connections) and the
    async writer thread, all closing cartons at once, small blocks."""
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as a, Store.open(db, box_id=BOX) as b:
        start(a)
        start(b)
        got: list[str] = []
        lock = threading.Lock()

        def worker(store: Store) -> None:
            mine = take(store, 60, block=7)
            with lock:
                got.extend(mine)

        async def writer() -> None:
            allocator = Allocator(CFG, block=7)

            def close(tx: Transaction) -> str:
                sscc = allocator(tx, now=0)
                close_carton(tx, sscc)
                return sscc

            got.extend(await asyncio.gather(*(a.write(close) for _ in range(60))))

        threads = [threading.Thread(target=worker, args=(s,)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        asyncio.run(writer())
        for t in threads:
            t.join()
        assert len(got) == 300 == len(set(got))
        high = reserved(db)
        assert high is not None and high >= max(serial(s) for s in got)
        assert a.query("SELECT count(DISTINCT sscc) AS n FROM cartons") == [{"n": 300}]


# ---------------------------------------------------------------------- the mark


def test_nothing_is_handed_out_before_the_mark_is_checked(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        start(store)
        take(store, 2)
    with Store.open(db, box_id=BOX) as store:  # reopened: not checked yet
        store.run(lambda tx: configure(tx, CFG))
        with pytest.raises(SsccUnreservedError, match="has not been checked") as info:
            take(store, 1)
        assert info.value.code == "sscc_unreserved"
        SyncMark(store).reconcile()
        assert serial(take(store, 1)[0]) == RESERVE_BLOCK + 1


def test_an_unwritable_mark_hands_out_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(store)
    take(store, RESERVE_BLOCK)  # the block is used up: the next needs a write

    def broken(path: Path, mark: object) -> None:
        raise OSError(28, "No space left on device")

    before = snapshot(store)
    with monkeypatch.context() as m:
        m.setattr(edge.store.syncmark, "write_mark", broken)
        with pytest.raises(SsccUnreservedError, match="No space left"):
            take(store, 1)
    assert snapshot(store) == before
    assert serial(take(store, 1)[0]) == RESERVE_BLOCK + 1  # once the disk is back


def test_the_uploader_keeps_the_high_water_when_it_advances_the_mark(store: Store) -> None:
    start(store)
    uploader_mark = SyncMark(store)  # another instance, as the uploader's
    uploader_mark.reconcile()
    take(store, 1)
    uploader_mark.will_send(store.epoch, write_events(store, 5))
    mark = read_mark(mark_path(store.path))[0]
    assert mark is not None and mark.sent == 5 and mark.sscc == {SPACE: RESERVE_BLOCK}


# ---------------------------------------------------------------------- crashes


WORKER = """
import sys
from pathlib import Path
from edge.config import ShippingConfig
from edge.shipping.sscc import Allocator, configure
from edge.store import Store
from edge.store.syncmark import SyncMark

cfg = ShippingConfig(gs1_prefix="0614141", sscc_extension=1, sscc_first=1,
                     sscc_last=999_999, sscc_low=10)
store = Store.open(Path(sys.argv[1]), box_id="test-box")
SyncMark(store).reconcile()
store.run(lambda tx: configure(tx, cfg))
allocator = Allocator(cfg, block=int(sys.argv[2]))

def close(tx):
    sscc = allocator(tx, now=0)
    tx.execute(
        "INSERT INTO cartons (order_ref, station, state, sscc, opened_ms) "
        "VALUES ('O', 'P', 'closed', ?, 0)", (sscc,))
    return sscc

while True:
    print(store.run(close), flush=True)  # on disk: the label may print now
"""


async def test_sigkilled_boxes_never_reuse(tmp_path: Path, processes: ProcessReaper) -> None:
    db = tmp_path / "box.db"
    seen: list[str] = []
    rng = random.Random(10)
    for _ in range(6):
        proc = processes.popen(
            [sys.executable, "-c", WORKER, str(db), "13"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        run: list[str] = []
        for _ in range(rng.randrange(5, 60)):
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, "the worker died"
            run.append(line.strip())
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        if seen:
            assert serial(run[0]) > max(serial(s) for s in seen)
        seen.extend(run)
    assert len(seen) == len(set(seen))
    with Store.open(db, box_id=BOX) as store:
        start(store)
        cartons = {r["sscc"] for r in store.query("SELECT sscc FROM cartons")}
        assert set(seen) <= cartons  # told = committed
        assert serial(take(store, 1)[0]) > max(serial(s) for s in cartons)


# ---------------------------------------------------------------------- restores


@pytest.mark.parametrize("sent", [False, True], ids=["undetected-by-sync", "detected"])
def test_a_restored_backup_never_hands_out_a_serial_again(tmp_path: Path, sent: bool) -> None:
    """Back up after some closes, close more (crossing blocks), restore the
    older copy beside the existing mark, start: the next SSCC is beyond every
    one handed out. Whether the sync mark judged it a copy (the box had sent
    beyond the backup) or not (nothing sent since) makes no difference."""
    db = tmp_path / "box.db"
    backup = tmp_path / "backup.db"
    with Store.open(db, box_id=BOX) as store:
        start(store)
        before = take(store, 30)
        backup_file(db, backup)
        after = take(store, 2 * RESERVE_BLOCK + 15)
        if sent:
            SyncMark(store).will_send(store.epoch, write_events(store, 3))
    restore(backup, db)
    with Store.open(db, box_id=BOX) as store:
        assert current(store.reader().conn).next == 31  # type: ignore[union-attr]
        result = SyncMark(store).reconcile()
        assert (result is not None) is sent
        store.run(lambda tx: configure(tx, CFG))
        new = take(store, 5)
        handed_out = before + after
        assert min(serial(s) for s in new) > max(serial(s) for s in handed_out)
        assert serial(new[0]) == 3 * RESERVE_BLOCK + 1  # the reserved block is skipped
        assert not set(new) & set(handed_out)
        assert SSCC_CLOSED_ALERT not in all_alerts(store)
        assert (RESTORE_ALERT in all_alerts(store)) is sent


def test_the_same_backup_restored_twice(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    backup = tmp_path / "backup.db"
    handed_out: list[str] = []
    with Store.open(db, box_id=BOX) as store:
        start(store)
        handed_out += take(store, 10)
        backup_file(db, backup)
    for _ in range(2):
        restore(backup, db)
        with Store.open(db, box_id=BOX) as store:
            start(store)
            new = take(store, 150)
            assert min(serial(s) for s in new) > max(serial(s) for s in handed_out)
            handed_out += new
    assert len(handed_out) == len(set(handed_out))


def test_a_backup_from_before_the_range_was_configured(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    backup = tmp_path / "backup.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        backup_file(db, backup)
        store.run(lambda tx: configure(tx, CFG))
        handed_out = take(store, 12)
    restore(backup, db)
    with Store.open(db, box_id=BOX) as store:
        start(store)  # the range is new to this database; the mark knows better
        assert serial(take(store, 1)[0]) > max(serial(s) for s in handed_out)


# ---------------------------------------------------------------------- lost marks


@pytest.mark.parametrize("damage", ["missing", "unreadable", "other box"])
def test_a_restore_without_a_mark_that_vouches_closes_the_range(
    tmp_path: Path, damage: str
) -> None:
    """The box cannot know what it handed out after the backup: it hands out
    nothing more of that range, and says so, until a new range is configured."""
    db = tmp_path / "box.db"
    backup = tmp_path / "backup.db"
    cfg = replace(CFG, sscc_last=5_000)
    with Store.open(db, box_id=BOX) as store:
        start(store, cfg)
        take(store, 5, cfg)
        backup_file(db, backup)
        handed_out = take(store, 40, cfg)
    restore(backup, db)
    path = mark_path(db)
    if damage == "missing":
        path.unlink()
    elif damage == "unreadable":
        path.write_text("{not json")
    else:
        doc = json.loads(path.read_bytes())
        path.write_text(json.dumps({**doc, "box": "box-2"}))
    with Store.open(db, box_id=BOX) as store:
        result = SyncMark(store).reconcile()
        assert result is not None and result.sscc is not None and result.sscc.closed
        assert open_alerts(store) == [SSCC_CLOSED_ALERT, RESTORE_ALERT]
        store.run(lambda tx: configure(tx, cfg))  # the same settings do not reopen it
        with pytest.raises(SsccExhaustedError, match="closed at start: the database is a copy"):
            take(store, 1, cfg)
        assert reserved(db) == 5_000  # the new mark says the whole range may be out
        # a range beyond the old one reopens, past everything
        cfg = replace(cfg, sscc_last=10_000)
        start(store, cfg)
        assert open_alerts(store) == [RESTORE_ALERT]
        new = take(store, 1, cfg)
        assert serial(new[0]) == 5_001 > max(serial(s) for s in handed_out)


def test_a_lost_mark_beside_the_live_database_closes_the_range_too(tmp_path: Path) -> None:
    """Documented cost: the box cannot tell a lost mark from a copy that left
    it behind (a clone beside the original would hand out the same serials)."""
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        start(store)
        take(store, 3)
    mark_path(db).unlink()
    with Store.open(db, box_id=BOX) as store:
        start(store)
        with pytest.raises(SsccExhaustedError):
            take(store, 1)
        assert SSCC_CLOSED_ALERT in open_alerts(store)


def test_a_first_start_with_no_mark_is_no_copy(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        store.run(lambda tx: configure(tx, CFG))  # configured before the first check
        start(store)
        assert serial(take(store, 1)[0]) == 1
        assert open_alerts(store) == []
