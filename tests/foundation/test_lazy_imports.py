"""What ``pickedge run`` imports before its first scan (issue 13, idle memory).

The heavy libraries are imported where first needed: biip (GS1 tables, on the
first decode or label), the batching engine with multiprocessing (a box with
carts), pyserial and the MQTT client (a box with such devices), and never
pandas or numpy (which sqlite-utils imported whenever installed).
bench/idle.py measures what this keeps: see the README's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAZY = (
    "biip",
    "epcpy",
    "pandas",
    "numpy",
    "sqlite_utils",
    "serial",
    "paho",
    "aiomqtt",
    "multiprocessing",
    "ctypes",
    "edge.batching",
    "rich",
)

PROBE = """
import json, sys
from pathlib import Path
from edge.config import load_config
from edge.wiring import build_daemon
import edge.cli.daemon
cfg = load_config(Path(sys.argv[1]), env={})
daemon = build_daemon(cfg)
daemon.store.close()
print(json.dumps(sorted(sys.modules)))
"""


def run_probe(probe: str, tmp_path: Path) -> Any:
    """Run ``probe`` in a fresh interpreter on a box with no devices, no cloud
    and no carts; what it printed last, as JSON."""
    config = tmp_path / "pickedge.toml"
    config.write_text('[box]\nid = "lazy"\n[store]\npath = "box.db"\n[api]\nport = 0\n')
    done = subprocess.run(
        [sys.executable, "-c", probe, str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_an_idle_box_without_devices_or_carts_imports_none_of_the_heavy_libraries(
    tmp_path: Path,
) -> None:
    modules = run_probe(PROBE, tmp_path)
    loaded = sorted({m for m in modules for lazy in LAZY if m == lazy or m.startswith(lazy + ".")})
    assert loaded == []


LOGIN_PROBE = """
import asyncio, json, sys
from pathlib import Path
import aiohttp
from edge.api import auth
from edge.config import load_config
from edge.wiring import build_daemon

cfg = load_config(Path(sys.argv[1]), env={})
daemon = build_daemon(cfg)
auth.add_picker(daemon.store, "P1", "Pat", "BADGE-1")
key = auth.enroll_pda(daemon.store, "pda-1")[1]

async def main():
    runner = asyncio.create_task(daemon.run(install_signals=False))
    api = daemon.parts["api"]
    await api.started.wait()
    before = "biip" in sys.modules
    url = f"http://127.0.0.1:{api.bound_port}/api/v1/sessions"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"badge": "BADGE-1"}, headers={"X-Device-Key": key}) as r:
            status = r.status
    for _ in range(200):
        if "biip.gtin" in sys.modules:
            break
        await asyncio.sleep(0.05)
    daemon.stop()
    await runner
    print(json.dumps([before, status, "biip.gtin" in sys.modules]))

asyncio.run(main())
"""


def test_the_gs1_tables_are_imported_in_the_background_after_a_first_login(
    tmp_path: Path,
) -> None:
    """Left out of an idle box, biip is imported once a PDA logs in, off the
    event loop, so the first GS1 scan after a start does not wait ~90 ms."""
    before, status, after = run_probe(LOGIN_PROBE, tmp_path)
    assert (before, status, after) == (False, 201, True)
