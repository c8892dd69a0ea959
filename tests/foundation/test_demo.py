"""``pickedge demo`` as a newcomer runs it: every part simulated, end to end,
the cloud failing now and then and away for a while, and its own check that
nothing was lost or counted twice; stopped by ``--duration`` and by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.processes import ProcessReaper

ENV = {**os.environ, "COLUMNS": "220", "PYTHONUNBUFFERED": "1"}


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", "demo", *args]


def _row(out: str, label: str) -> str:
    """The report's value for the row starting with ``label``."""
    line = next(x for x in out.splitlines() if x.startswith(f"│ {label}"))
    return line.split("│")[2].strip()


def _report_holds(out: str) -> None:
    assert "What happened" in out
    for check in (
        "nothing lost, nothing counted twice",
        "cloud net stock = box ledger",
        "one task_picked per picked task",
        "one shipment_confirmed per shipment",
        "the SSCCs confirmed are the SSCCs",
        "one carton_departed per carton",
        "every alert raised and cleared on the box was received upstream",
    ):
        assert _row(out, check) == "yes", check
    written, acked, held = re.match(
        r"(\d+) = (\d+) = (\d+);", _row(out, "events: written")
    ).groups()  # type: ignore[union-attr]
    assert written == acked == held and int(written) > 0
    told, at_cloud, ledger = _row(out, "units: told to pickers").split(" = ")
    assert told == at_cloud == ledger
    assert "daemon stopped" in out


def test_demo_runs_end_to_end_and_balances(tmp_path: Path) -> None:
    result = subprocess.run(
        _demo("--pickers", "2", "--tours", "2", "--pace", "0", "--dir", str(tmp_path / "demo")),
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "daemon up" in out
    assert "tour_done" not in out  # narrated in words, not codes
    assert "tour done" in out
    assert "wrong_location" in out  # the scripted error scan was refused
    assert "short at" in out
    assert "RFID tag entered the portal: urn:epc:id:sgtin:0614141.812345.6789" in out
    # the dashboard: printed with what a person needs to log in, because it answered
    assert re.search(r"open http://127\.0\.0\.1:\d+/dashboard in a browser", out)
    assert "then badge SUPER0001" in out
    # the cloud: occasional faults, and an outage in the middle of picking
    assert "fails about 4 % of batches on purpose" in out
    assert "OUTAGE: the cloud is unreachable" in out
    assert "cloud unreachable: backing off" in out
    assert "every scan still answered by the box" in out
    assert re.search(r"back after \d+\.\d s on the same address", out)
    assert "caught up" in out
    outage = out.index("OUTAGE")
    assert outage < out.index("labels printed, shipment confirmed")  # while picking
    # the sync alert: raised during the outage, cleared once it drained
    raised = out.index("alert raised: backlog_age")
    cleared = out.index("alert cleared: backlog_age")
    assert outage < raised < cleared
    # the shipping half: packed at the station, labels printed, cartons out
    assert "✗ wrong_order" in out  # a unit of another order, refused and named
    assert "labels printed, shipment confirmed" in out
    assert "carton labels printed so far (GS1-128, SSCC)" in out
    assert "RFID tag entered the portal: urn:epc:id:sscc:7612345." in out
    assert "alert: a shipment's carton did not leave in the window" in out
    assert "its alert cleared" in out
    # the report
    assert _row(out, "stopped").startswith("the scenario ran to its end")
    _report_holds(out)
    for check in (
        "held-back carton and stray carton",
        "the outage raised backlog_age and cleared it, both received upstream",
    ):
        assert _row(out, check) == "yes", check
    assert re.match(r"\d+\.\d m saved per unit", _row(out, "walking saved per unit"))
    shipped = re.match(r"(\d+) orders in (\d+) cartons", _row(out, "shipments confirmed"))
    assert shipped and int(shipped[1]) > 0
    assert re.match(r"\d+\.\d s unreachable", _row(out, "cloud outage"))
    assert _row(out, "faults the cloud injected").startswith("batches: ")
    assert "backlog_age 1/1" in _row(out, "alerts raised / cleared")
    # the broker ran with our config only: no anonymous access
    conf = (tmp_path / "demo" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf


def test_demo_keeps_the_floor_going_until_its_duration(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        _demo(
            *("--pickers", "2", "--tours", "1", "--pace", "0", "--outage", "0"),
            *("--duration", "30", "--dir", str(tmp_path / "demo")),
        ),
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
    )
    took = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "wave 2: 6 new orders for the zone" in out  # more orders after the scenario
    assert "--duration 30 s reached: the floor stops" in out
    assert _row(out, "stopped").startswith("--duration 30 s reached after")
    waves = int(_row(out, "waves of orders").split(" / ")[0])
    assert waves >= 2
    _report_holds(out)
    assert took < 30 + 40, took  # stopped by itself: drain, report, shutdown


def _session_and_broker(demo_pid: int, workdir: Path) -> set[int]:
    """Every process of the demo's session, and any whose command line names
    its directory (the broker runs in a process group of its own)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        sid = int(stat.rsplit(")", 1)[1].split()[3])
        if sid == demo_pid or str(workdir) in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_the_demo_cleanly_with_its_report(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    workdir = tmp_path / "demo"
    proc = processes.popen(
        _demo("--pickers", "2", "--tours", "2", "--dir", str(workdir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert proc.stdout is not None
    lines: list[str] = []
    outage = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "cloud unreachable: backing off" in line:
                outage.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # mid-run, the worst moment: pickers scanning and the cloud away
    assert outage.wait(90), "".join(lines)
    children = _session_and_broker(proc.pid, workdir) - {proc.pid}
    assert any("mosquitto" in Path(f"/proc/{p}/cmdline").read_text() for p in children)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert proc.wait(60) == 0, "".join(lines)
    reader.join(10)
    out = "".join(lines)
    assert "Ctrl-C: stopping cleanly" in out
    assert "the outage cut short" in out
    assert "Traceback" not in out
    assert _row(out, "stopped").startswith("Ctrl-C after")
    _report_holds(out)
    # nothing left behind: the broker, the batcher's workers, the simulators
    time.sleep(0.5)
    left = [p for p in children | _session_and_broker(proc.pid, workdir) if _alive(p)]
    assert not left, left
