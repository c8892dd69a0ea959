"""``pickedge sync status``, the metrics, and the simulator as a process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from sync_helpers import BOX, SECRET, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.metrics import SyncMetrics
from cloud_sync.receiver import Receiver
from edge.cli.sync import sync_group
from edge.config import Secret
from edge.metrics import set_sync_backlog
from edge.store import Store
from simulators.cloud import CloudSimulator, Faults
from tests.support.processes import ProcessReaper


def config(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[box]\nid = "{BOX}"\n\n[store]\npath = "box.db"\n')
    return path


async def test_status_reports_backlog_ack_error_and_back_off(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with Store.open(tmp_path / "box.db", box_id=BOX) as store:
        write_moves(store, 10)
        async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
            up = uploader(store, client, batch_max_events=12)
            await up.step()  # 12 of 20 acked
            sim.batch_faults = Faults(script=["503"])
            await up.step()
    result = CliRunner().invoke(sync_group, ["status", "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert (st["box"], st["last_seq"], st["acked_seq"], st["backlog"]) == (BOX, 20, 12, 8)
    assert st["oldest_unacked_ms"] is not None and st["last_ack_ms"] is not None
    assert st["last_error"].startswith("upload: 503") and st["backoff_s"] > 0
    text = CliRunner().invoke(sync_group, ["status", "--config", str(cfg)])
    assert text.exit_code == 0
    assert "8 events unacked (acked 12 of 20)" in text.output and "503" in text.output


async def test_drain_follows_the_uploader_until_nothing_is_unacked(tmp_path: Path) -> None:
    """``sync drain`` (a progress bar) returns once a real uploader, batch by
    batch against the cloud simulator, has every event acked — new events
    written meanwhile included; it gives up with exit 1 while some are not."""
    cfg = config(tmp_path)
    with Store.open(tmp_path / "box.db", box_id=BOX) as store:
        write_moves(store, 10)  # 20 events
        timed_out = await asyncio.to_thread(
            CliRunner().invoke,
            sync_group,
            ["drain", "--config", str(cfg), "--timeout", "0.3", "--interval", "0.05"],
        )
        assert timed_out.exit_code == 1, timed_out.output
        assert "20 events still unacked" in timed_out.output
        drain = asyncio.create_task(
            asyncio.to_thread(
                CliRunner().invoke,
                sync_group,
                ["drain", "--config", str(cfg), "--timeout", "30", "--interval", "0.05"],
            )
        )
        async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
            up = uploader(store, client, batch_max_events=5)
            for _ in range(3):
                await up.step()
                await asyncio.sleep(0.15)
            assert not drain.done()  # 5 of 20 still unacked
            write_moves(store, 2, seed=3)  # 4 more meanwhile
            await up.send_all()
            result = await asyncio.wait_for(drain, 30)
    assert result.exit_code == 0, result.output
    assert "outbox drained: nothing unacked (acked 24 of 24)" in result.output


def test_status_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(sync_group, ["status", "--config", str(config(tmp_path))])
    assert result.exit_code == 2 and "no such database" in result.output


async def test_metrics_carry_the_same_figures(store: Store) -> None:
    registry = CollectorRegistry()
    metrics = SyncMetrics(registry)
    write_moves(store, 5)
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        sim.batch_faults = Faults(script=["500"])
        up = uploader(store, client, metrics=metrics, batch_max_events=6)
        await up.send_all()
    write_moves(store, 2, seed=3)
    set_sync_backlog(metrics, store)
    text = generate_latest(registry).decode()
    assert "pickedge_sync_backlog_events 4.0" in text
    assert "pickedge_sync_acked_seq 10.0" in text
    assert 'pickedge_sync_batches_total{outcome="500"} 1.0' in text
    assert 'pickedge_sync_batches_total{outcome="200"} 2.0' in text


async def test_simulator_runs_as_a_process_and_stops_on_sigterm(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    proc = await processes.exec(
        sys.executable,
        "-m",
        "simulators.cloud",
        "--port",
        "0",
        "--secret-file",
        str(secret),
        "--db",
        str(tmp_path / "cloud.db"),
        "--tasks",
        "3",
        "--fault",
        "fail_after=0.5",  # the box resends; the cloud must dedup
        "--changes-fault",
        "bad_sig=0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = (await proc.stdout.readline()).decode()
    assert line.startswith("cloud simulator listening on http://127.0.0.1:")
    url = line.split()[-1]
    with Store.open(tmp_path / "box.db", box_id=BOX) as store:
        write_moves(store, 3)
        async with SyncClient(url, BOX, SECRET) as client:
            assert await uploader(store, client).send_all() == 6
            reply = await client.get_changes(None, 100)
    assert reply.signed and reply.status == 200
    assert sum(c["type"] == "task" for c in reply.doc["changes"]) == 3
    proc.send_signal(signal.SIGTERM)  # on a failure above, the reaper stops it
    async with asyncio.timeout(10):
        assert await proc.wait() == 0
    # its SQLite file kept what it applied
    r = Receiver(tmp_path / "cloud.db")
    assert r.count(BOX) == 6
    r.close()


def test_cloud_sync_does_not_load_the_device_layer_at_run_time() -> None:
    code = (
        "import sys, cloud_sync.uploader, cloud_sync.downloader, cloud_sync.metrics, "
        "simulators.cloud; print(sorted(m for m in sys.modules if m.split('.')[0] == 'devices'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_client_takes_the_configs_secret_object(store: Store) -> None:
    write_moves(store, 1)
    async with (
        CloudSimulator(SECRET) as sim,
        SyncClient(sim.url, BOX, Secret(SECRET, "test")) as client,
    ):
        assert "s3cret" not in repr(client)
        assert await uploader(store, client).send_all() == 2


async def test_components_from_a_config_file(tmp_path: Path) -> None:
    from edge.config import load_config
    from edge.daemon import Component
    from edge.wiring import downloader, sync_client
    from edge.wiring import uploader as configured_uploader
    from simulators.cloud import task_feed

    (tmp_path / "secret").write_text(SECRET + "\n")
    async with CloudSimulator(SECRET, feed=task_feed(tasks=2)) as sim:
        path = config(tmp_path)
        path.write_text(
            path.read_text().replace("[box]\n", '[box]\nsecret_file = "secret"\n')
            + f'\n[cloud]\nurl = "{sim.url}"\nbatch_max_events = 4\ntimeout_s = 2.0\n'
        )
        cfg = load_config(path, env={})
        with Store.open(cfg.store_path(), box_id=cfg.box.id) as store:
            write_moves(store, 5)
            client = sync_client(cfg)
            assert client is not None
            async with client:
                up = configured_uploader(cfg, store, client)
                down = downloader(cfg, store, client)
                assert isinstance(up, Component) and isinstance(down, Component)
                assert (up.name, down.name, up.batch_max_events) == ("uploader", "downloader", 4)
                assert await up.send_all() == 10
                assert await down.pull_all() == 1
            assert store.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 2
        assert sim.stats["batches", "200"] == 3
