"""The maintenance tick flushes the dashboard's hourly figures (issue 13):
answer times kept in memory become a ``floor_hours`` row, twice the same
hour adds up, and in peak mode the flush waits (memory keeps the figures)."""

from __future__ import annotations

from pathlib import Path

from edge.maintenance import Maintenance
from edge.ops import hours
from edge.store.db import Store


async def test_the_tick_flushes_and_peak_mode_defers(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "box.db", box_id="box-test")
    try:
        clock = [7 * hours.HOUR_MS + 5]
        scan_hours = hours.ScanHours(clock=lambda: clock[0])
        peak = [False]
        m = Maintenance(
            store,
            interval_s=60,
            warn_backlog=100,
            scan_hours=scan_hours,
            defer=lambda work: peak[0] and work == "dashboard",
        )
        for _ in range(3):
            scan_hours.record(0.004)
        await m.tick()
        assert store.query("SELECT hour_ms, scans FROM floor_hours") == [
            {"hour_ms": 7 * hours.HOUR_MS, "scans": 3}
        ]
        assert scan_hours.pending() == {}

        peak[0] = True
        scan_hours.record(0.004)
        await m.tick()
        assert store.query("SELECT scans FROM floor_hours") == [{"scans": 3}]
        assert scan_hours.pending()[7 * hours.HOUR_MS].scans == 1

        peak[0] = False
        await m.tick()
        (row,) = store.query("SELECT scans, scan_hist FROM floor_hours")
        assert row["scans"] == 4
        figures = hours.HourFigures(7 * hours.HOUR_MS, 4, hours._hist(row["scan_hist"]))
        assert figures.quantile_ms(0.99) == 5.0
    finally:
        store.close()
