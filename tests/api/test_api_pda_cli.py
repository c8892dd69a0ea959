"""``pickedge pda …`` commands on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.api import auth
from edge.cli.db import db_group
from edge.cli.pda import pda_group, picker_group
from edge.config import load_config
from edge.store.db import Store
from tests.support.api_fixtures import write_config


def test_enroll_list_revoke_and_picker_add(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    runner = CliRunner()
    # CLI commands never create or migrate the database (`pickedge db migrate` does)
    assert runner.invoke(db_group, ["migrate", "--config", config]).exit_code == 0
    result = runner.invoke(pda_group, ["enroll", "handheld-1", "--config", config])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert len(key) >= 40 and "\n" not in key and " " not in key
    again = runner.invoke(pda_group, ["enroll", "handheld-1", "--config", config])
    assert again.exit_code == 2 and "already enrolled" in again.stderr
    listed = runner.invoke(pda_group, ["list", "--config", config])
    assert "handheld-1" in listed.stdout and key not in listed.stdout
    added = runner.invoke(
        pda_group,
        ["picker", "add", "P9", "Nia", "BADGE-9", "--role", "supervisor", "--config", config],
    )
    assert added.exit_code == 0, added.output
    plain = runner.invoke(picker_group, ["add", "P8", "Ola", "BADGE-8", "--config", config])
    assert plain.exit_code == 0
    clash = runner.invoke(picker_group, ["add", "P7", "Eve", "BADGE-9", "--config", config])
    assert clash.exit_code == 2 and "already belongs" in clash.stderr
    cfg = load_config(Path(config))
    with Store.open(cfg.store_path(), box_id=cfg.box.id) as store:
        assert auth.device_of(store, key).startswith("pda-")
        assert auth.picker_by_badge(store, "BADGE-9").role == "supervisor"
    revoked = runner.invoke(pda_group, ["revoke", "handheld-1", "--config", config])
    assert revoked.exit_code == 0
    with (
        Store.open(cfg.store_path(), box_id=cfg.box.id) as store,
        pytest.raises(auth.UnknownDeviceError),
    ):
        auth.device_of(store, key)
    missing = runner.invoke(pda_group, ["revoke", "nope", "--config", config])
    assert missing.exit_code == 2 and "no PDA" in missing.stderr
