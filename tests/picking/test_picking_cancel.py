"""A task cancelled by the cloud while it is being picked: its picker is told at
once, its stops leave the tour, its reservations are released."""

from __future__ import annotations

from edge.api.app import HUB
from edge.masterdata import apply_changes
from tests.support.api_fixtures import GTIN_A, Zone, add_task, stock, walk


async def test_task_cancel_reaches_the_picker_and_reroutes(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    pda = await zone.picker()
    async with zone.http.ws_connect(f"{zone.base}/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": pda.token})
        assert (await ws.receive_json(timeout=5))["type"] == "message"
        tour = (await pda.scan("O-1"))["tour"]
        assert (await ws.receive_json(timeout=5))["type"] == "tour_assigned"
        assert {s["task"] for s in walk(tour)} == {"T-1", "T-2"}
        assert stock(zone.store, "SKU-D", "A-03-12") == (4, 2)

        notices = zone.store.run(
            lambda tx: apply_changes(tx, [{"type": "task_cancel", "data": {"task": "T-2"}}])
        )
        assert [n.kind for n in notices] == ["task_cancelled"]
        zone.server.app[HUB].deliver(notices)  # what the downloader's on_applied does
        messages = [await ws.receive_json(timeout=5) for _ in range(2)]
        kinds = {m["type"]: m for m in messages}
        assert kinds["task_cancelled"]["task"] == "T-2"
        rerouted = kinds["tour_rerouted"]["tour"]
        assert [s["task"] for s in walk(rerouted)] == ["T-1"]
        assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
        await pda.scan("A-01-05")
        assert (await pda.scan(GTIN_A))["result"] == "tour_done"
