"""Configuration: typed, validated in one place, every problem reported with
its key path and line, environment overrides with their provenance, secrets
read from files and never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.config import effective_config, load_config
from edge.errors import ConfigError

MINIMAL = """\
[box]
id = "zone-b-02"
secret_file = "box.secret"

[cloud]
url = "http://127.0.0.1:9"

[store]
path = "data/pe.db"
"""


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    (tmp_path / "box.secret").write_text("s3cret-value\n")
    path = tmp_path / "pe.toml"
    path.write_text(MINIMAL)
    return path


def test_minimal_file_gets_defaults_and_sources(cfg_file: Path) -> None:
    cfg = load_config(cfg_file, env={})
    assert cfg.box.id == "zone-b-02"
    assert cfg.api.port == 8470
    assert cfg.store_path() == cfg_file.parent / "data" / "pe.db"  # relative to the file
    sources = {p: s for p, _, s in effective_config(cfg)}
    assert sources["box.id"] == "file:2"
    assert sources["cloud.url"] == "file:6"
    assert sources["api.port"] == "default"


def test_environment_overrides_are_typed_and_traced(cfg_file: Path) -> None:
    env = {
        "PICKEDGE__API__PORT": "8080",
        "PICKEDGE__LAYOUT__DEPOT__X": "4.5",
        "PICKEDGE__CLOUD__TIMEOUT_S": "3",
        "UNRELATED": "x",
    }
    cfg = load_config(cfg_file, env=env)
    assert cfg.api.port == 8080
    assert cfg.layout.depot.x == 4.5
    assert cfg.cloud.timeout_s == 3.0
    sources = {p: s for p, _, s in effective_config(cfg)}
    assert sources["api.port"] == "env:PICKEDGE__API__PORT"
    assert sources["layout.depot.x"] == "env:PICKEDGE__LAYOUT__DEPOT__X"


def test_every_problem_is_listed_with_path_and_line(cfg_file: Path) -> None:
    cfg_file.write_text(
        MINIMAL
        + '[api]\nport = "eighty"\nhots = "0.0.0.0"\n'
        + '[logging]\nlevel = "loud"\n'
        + "[stroe]\nx = 1\n"
    )
    env = {
        "PICKEDGE__MQTT__PROT": "1",
        "PICKEDGE__STORE__BUSY_TIMEOUT_MS": "soon",
        "PICKEDGE__DEVICES__0__URL": "/dev/ttyS0",
    }
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env=env)
    problems = info.value.problems
    text = "\n".join(problems)
    assert f"{cfg_file}:11: api.port: must be an integer, not 'eighty'" in text
    assert f"{cfg_file}:12: api.hots: unknown key (did you mean 'host'?)" in text
    assert f"{cfg_file}:14: logging.level: must be 'debug' | 'info' | 'warning' | 'error'" in text
    assert f"{cfg_file}:15: stroe: unknown section (did you mean 'store'?)" in text
    assert (
        "PICKEDGE__MQTT__PROT (environment): mqtt.prot: unknown key (did you mean 'port'?)" in text
    )
    assert "store.busy_timeout_ms: must be an integer, not 'soon'" in text
    assert "devices.0.url: [[devices]] entries are set in the file, not the environment" in text
    assert len(problems) == 7


def test_ranges_and_cross_checks(cfg_file: Path) -> None:
    cfg_file.write_text(
        MINIMAL.replace('url = "http://127.0.0.1:9"', 'url = "ftp://x"')
        + "warn_backlog = 5000000\n[api]\nport = 70000\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env={})
    text = str(info.value)
    assert "api.port: must be at most 65535, not 70000" in text
    assert "cloud.url: must be an http(s) URL" in text
    assert "store.warn_backlog: must be below store.max_backlog" in text


def test_missing_and_empty_secret_files(cfg_file: Path) -> None:
    (cfg_file.parent / "box.secret").unlink()
    with pytest.raises(
        ConfigError, match=r"pe.toml:3: box.secret_file: secret file .* does not exist"
    ):
        load_config(cfg_file, env={})
    (cfg_file.parent / "box.secret").write_text("\n")
    with pytest.raises(ConfigError, match=r"is empty"):
        load_config(cfg_file, env={})


def test_secret_is_read_but_never_shown(cfg_file: Path) -> None:
    cfg = load_config(cfg_file, env={})
    secret = cfg.box_secret()
    assert secret is not None and secret.reveal() == "s3cret-value"
    shown = repr(cfg) + str(effective_config(cfg)) + str(secret) + repr(secret)
    assert "s3cret-value" not in shown


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[box\nid = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml", env={})


def test_box_id_is_required_and_shaped(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[box]\nid = "has space"\n')
    with pytest.raises(ConfigError, match=r"box\.id: letters, digits"):
        load_config(path, env={})
    path.write_text("[api]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"box\.id: is required"):
        load_config(path, env={})


def test_devices_are_checked(cfg_file: Path) -> None:
    cfg_file.write_text(
        MINIMAL
        + '[[devices]]\nid = "d1"\ndriver = "serial-scaner"\nurl = "loop://"\n'
        + '[[devices]]\nid = "d1"\ndriver = "impinj-iot"\nrole = "roof"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env={})
    text = str(info.value)
    assert "devices[0].driver: unknown driver 'serial-scaner'" in text
    assert "did you mean 'serial-scanner'?" in text
    assert f"{cfg_file}:15: devices[1].id: duplicate device id 'd1'" in text
    assert "devices[1].topic: is required for driver 'impinj-iot'" in text
    assert (
        f"{cfg_file}:17: devices[1].role: must be 'pack_station' | 'dock_door' | 'pick_zone'"
        in text
    )


def test_layout_is_validated_by_the_routing_engine(cfg_file: Path) -> None:
    cfg_file.write_text(
        MINIMAL + "[layout]\naisles = 4\naisle_pitch_m = 3.0\ndepot = { x = -1.0, y = 2.0 }\n"
    )
    with pytest.raises(ConfigError, match=r"layout"):
        load_config(cfg_file, env={})


def test_a_secret_file_must_be_private_to_the_service(cfg_file: Path) -> None:
    secret = cfg_file.parent / "box.secret"
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0640\): chmod 600 it"):
        load_config(cfg_file, env={})
    secret.chmod(0o600)
    if os.geteuid() == 0:  # as root the file can be given to another user
        os.chown(secret, 4242, -1)
        with pytest.raises(ConfigError, match=r"belongs to uid 4242, not to this service"):
            load_config(cfg_file, env={})
        os.chown(secret, 0, -1)
    assert load_config(cfg_file, env={}).box_secret() is not None


def test_a_systemd_credential_is_read_from_its_directory(cfg_file: Path, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "box-secret").write_text("from-systemd\n")
    (creds / "box-secret").chmod(0o644)  # systemd keeps the directory private
    cfg_file.write_text(cfg_file.read_text().replace('"box.secret"', '"credential:box-secret"'))
    cfg = load_config(cfg_file, env={"CREDENTIALS_DIRECTORY": str(creds)})
    secret = cfg.box_secret()
    assert secret is not None and secret.reveal() == "from-systemd"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(cfg_file, env={})  # no credentials directory: not started by systemd
