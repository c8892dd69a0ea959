"""TLS to the cloud (issue 14): the uploader against the cloud simulator served
over HTTPS with a certificate from a CA the test makes.

With ``[cloud] ca_file`` naming that CA the box syncs; without it (the system's
CAs), or with another CA, every attempt is a transport failure — retried with
back-off, nothing acked, events kept, the reason logged once and saying what to
fix — and the box converges as soon as it trusts the CA. There is no switch to
turn verification off.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest
from sync_helpers import BOX, SECRET, assert_converged, uploader, write_moves

from cloud_sync.client import CloudTlsError, SyncClient
from cloud_sync.uploader import Step
from common.tls import TlsConfigError, server_context
from edge import wiring
from edge.config import load_config
from edge.errors import ConfigError
from edge.store import Store
from simulators.cloud import CloudSimulator
from tests.support.tls import ThrowawayCa


def _acked(store: Store) -> int:
    return int(store.query("SELECT acked_seq FROM sync_state")[0]["acked_seq"])


async def test_uploader_syncs_over_https_only_when_it_trusts_the_ca(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = ThrowawayCa(tmp_path / "ca")
    leaf = ca.issue("cloud")
    other = ThrowawayCa(tmp_path / "other", name="Someone else's CA")
    write_moves(store, 10)
    async with CloudSimulator(
        SECRET, ssl_context=server_context(str(leaf.cert), str(leaf.key))
    ) as sim:
        assert sim.url.startswith("https://")
        caplog.set_level(logging.WARNING, logger="cloud_sync.uploader")
        for ca_file in (None, str(other.cert)):
            async with SyncClient(sim.url, BOX, SECRET, timeout_s=2.0, ca_file=ca_file) as c:
                up = uploader(store, c)
                for _ in range(3):
                    assert await up.step() is Step.RETRY
                assert up.backoff_s > 0
                with pytest.raises(CloudTlsError, match=r"not trusted.*\[cloud\] ca_file"):
                    await c.post_batch(b"")
        assert sim.receiver.count(BOX) == 0 and _acked(store) == 0
        assert sum(s for (endpoint, _), s in sim.stats.items() if endpoint == "batches") == 0
        warned = [r.getMessage() for r in caplog.records if "not trusted" in r.getMessage()]
        assert len(warned) == 2, warned  # once per client (the message names no CA)
        async with SyncClient(sim.url, BOX, SECRET, timeout_s=2.0, ca_file=str(ca.cert)) as c:
            await uploader(store, c).send_all()
        assert_converged(sim, store)


def test_no_switch_turns_verification_off() -> None:
    params = inspect.signature(SyncClient).parameters
    assert not {"ssl", "verify", "insecure", "verify_ssl"} & set(params)


def test_cloud_ca_file_in_the_config(tmp_path: Path) -> None:
    ThrowawayCa(tmp_path / "ca")  # ca/ca.pem, named relative to the config file
    secret = tmp_path / "box.secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)

    def config(url: str, ca_file: str) -> Path:
        path = tmp_path / "pickedge.toml"
        path.write_text(
            f'[box]\nid = "{BOX}"\nsecret_file = "box.secret"\n'
            f'[store]\npath = "box.db"\n[cloud]\nurl = "{url}"\nca_file = "{ca_file}"\n'
        )
        return path

    cfg = load_config(config("https://cloud.example:8443", "ca/ca.pem"))  # relative: to the file
    client = wiring.sync_client(cfg)
    assert client is not None and client._tls is not None
    with pytest.raises(ConfigError, match=r"cloud\.ca_file.*does not exist"):
        load_config(config("https://cloud.example", "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="no usable PEM"):
        load_config(config("https://cloud.example", "junk.pem"))
    with pytest.raises(ConfigError, match="not https"):
        load_config(config("http://cloud.example", "ca/ca.pem"))
    with pytest.raises(TlsConfigError):
        SyncClient("https://cloud.example", BOX, SECRET, ca_file=str(tmp_path / "junk.pem"))


def test_plain_http_to_a_remote_cloud_is_loud(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "box.secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    path = tmp_path / "pickedge.toml"
    for url, loud in (("http://cloud.example", True), ("http://127.0.0.1:9", False)):
        path.write_text(
            f'[box]\nid = "{BOX}"\nsecret_file = "box.secret"\n[cloud]\nurl = "{url}"\n'
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edge.wiring"):
            assert wiring.sync_client(load_config(path)) is not None
        assert any("plain HTTP" in r.getMessage() for r in caplog.records) is loud
