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


def test_an_idle_box_without_devices_or_carts_imports_none_of_the_heavy_libraries(
    tmp_path: Path,
) -> None:
    config = tmp_path / "pickedge.toml"
    config.write_text('[box]\nid = "lazy"\n[store]\npath = "box.db"\n[api]\nport = 0\n')
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    loaded = sorted({m for m in modules for lazy in LAZY if m == lazy or m.startswith(lazy + ".")})
    assert loaded == []
