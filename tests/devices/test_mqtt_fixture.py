"""The broker fixture fails — never skips — when no mosquitto binary exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_missing_mosquitto_fails_the_test_with_a_clear_message(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import tests.support.mosquitto as support\n"
        "support.find_mosquitto = lambda: None  # as on a box without mosquitto\n"
        "from tests.support.mosquitto import mosquitto_broker  # noqa: F401\n"
        "def test_needs_broker(mosquitto_broker):\n"
        "    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 error" in out and "skipped" not in out, out
    assert "mosquitto is required for MQTT tests" in out
    assert "apt-get install mosquitto" in out
