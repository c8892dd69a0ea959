"""Operating the receiver: health, metrics, logs, secrets kept out of sight, the CLI.

``/livez`` and ``/readyz`` on the ops listener (``/readyz`` 503 while
PostgreSQL refuses connections, 200 once it takes them again); ``/metrics``
counting every batch outcome with no per-box label but the five most silent
boxes, so twenty boxes make no more series than six; JSON log lines that parse
and name the box; a canary secret (and a canary database password) that never
shows in a log line, the metrics or an answer; ``pickedge cloud-receiver`` and
its subcommands in-process, bad arguments exiting 2 with one line, and one real
receiver process answering a signed batch.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict

from cloud_sync.client import CHANGES_PATH, SyncClient
from cloud_sync.receiver import Receiver
from cloud_sync.receiver.core import make_cursor
from cloud_sync.receiver.secrets import TableSecrets
from cloud_sync.receiver.service import JsonFormatter, ReceiverMetrics
from edge.cli.cloud_receiver import cloud_receiver_group
from tests.cloud.receiver_support import (
    BOX,
    EPOCH,
    SECRET,
    STORY,
    FailingOms,
    batch,
    db,
    delta,
    echo,
    json_lines,
    live_receiver,
    post_raw,
    raw_request,
    secrets_dir,
    write_secret,
)
from tests.support.postgres import PostgresServer, free_port
from tests.support.processes import ProcessReaper

__all__ = ["db", "secrets_dir"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]
CANARY = "CANARY-7f3e9d1c-never-logged"
CANARY_PASSWORD = "CANARYPW-51ab"


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


# --------------------------------------------------------------------------- health


async def test_livez_and_readyz_are_on_the_ops_listener_only(db: str, secrets_dir: Path) -> None:
    async with live_receiver(db, secrets_dir) as cloud:
        status, body = await get(cloud.ops_url + "/livez")
        assert (status, json.loads(body)) == (200, {"status": "alive"})
        status, body = await get(cloud.ops_url + "/readyz")
        assert (status, json.loads(body)) == (200, {"status": "ready"})
        # the port boxes reach carries the sync API only, and the ops port nothing else
        for path in ("/livez", "/readyz", "/metrics"):
            assert (await get(cloud.url + path))[0] == 404
        assert (await get(cloud.ops_url + CHANGES_PATH))[0] == 404


def dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


async def test_readyz_is_503_while_postgresql_refuses_and_200_once_it_is_back(
    pg_server: PostgresServer, pg_url: str, secrets_dir: Path
) -> None:
    """The database stops taking connections (its backends terminated, new
    ones refused): /readyz 503, /livez 200, a batch 503 signed (the box
    resends); then it takes them again and the receiver recovers unrestarted."""
    async with (
        live_receiver(pg_url, secrets_dir) as cloud,
        SyncClient(cloud.url, BOX, SECRET, timeout_s=60) as client,
    ):
        assert (await client.post_batch(batch([delta(-1)]))).doc == echo(1, 1, 1)
        name = dbname(pg_url)
        with pg_server.connect() as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
        try:
            pending = asyncio.create_task(client.post_batch(batch([delta(-2)], first=2)))
            started = time.monotonic()
            status, body = await get(cloud.ops_url + "/readyz")
            assert (status, json.loads(body)) == (503, {"status": "unready", "reason": "database"})
            assert time.monotonic() - started < 5  # readiness answers promptly
            assert (await get(cloud.ops_url + "/livez"))[0] == 200
            reply = await pending  # after the pool's wait for a connection
            assert (reply.status, reply.signed) == (503, True)
            assert reply.doc["error"]["code"] == "storage_unavailable"
            assert (reply.doc["epoch"], reply.doc["first"], reply.doc["last"]) == (EPOCH, 2, 2)
        finally:
            with pg_server.connect() as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 30
        while (await get(cloud.ops_url + "/readyz"))[0] != 200:
            assert time.monotonic() < deadline, "the receiver did not recover"
            await asyncio.sleep(0.2)
        reply = await client.post_batch(batch([delta(-2)], first=2))
        assert (reply.status, reply.doc) == (200, echo(2, 2, 2))
        assert cloud.receiver.net_stock(BOX) == {("SKU-1", "A01-01"): -3}
        metrics = await scrape(cloud.ops_url)
        assert metrics[("pickedge_receiver_batches_total", (("outcome", "unavailable"),))] == 1


# --------------------------------------------------------------------------- metrics


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(ops_url: str) -> Series:
    status, text = await get(ops_url + "/metrics")
    assert status == 200
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def counter(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_every_batch_outcome_with_no_box_label(
    db: str, secrets_dir: Path
) -> None:
    limit = 4096
    async with (
        live_receiver(db, secrets_dir, max_batch_bytes=limit) as cloud,
        SyncClient(cloud.url, BOX, SECRET) as client,
    ):
        url = cloud.url
        # applied 2 (3 + 2 events), duplicate 1 (3 events), gap 1, conflict 1,
        # malformed 1, too_large 2 (signed and unread), unauthorized 2
        await client.post_batch(batch([delta(-1)] * 3))
        await client.post_batch(batch([delta(-1)] * 4, first=2))  # 2..3 held, 4..5 new
        await client.post_batch(batch([delta(-1)] * 3))
        await client.post_batch(batch([delta(-1)], first=9))
        await client.post_batch(batch([delta(+1)], first=2))
        await client.post_batch(b"junk")
        await client.post_batch(batch([delta(-1, ref="x" * 90)] * 40))
        await post_raw(url, batch([delta(-1, ref="x" * 90)] * 80))
        await post_raw(url, batch([delta(-1)]), secret="wrong")
        await post_raw(url, batch([delta(-1)]), box="zone-unknown")
        # pages: 2 served, 1 bad cursor, 1 bad limit, 1 unauthorized
        await client.get_changes(None, 10)
        await client.get_changes(make_cursor(BOX, 0), 10)
        await client.get_changes(make_cursor("zone-b", 0), 10)
        await raw_request(url, "GET", CHANGES_PATH + "?limit=0")
        await raw_request(url, "GET", CHANGES_PATH, secret="wrong")
        m = await scrape(cloud.ops_url)
    name = "pickedge_receiver_batches_total"
    assert {
        o: counter(m, name, outcome=o)
        for o in (
            "applied",
            "duplicate",
            "gap",
            "conflict",
            "malformed",
            "too_large",
            "unauthorized",
            "unavailable",
            "error",
        )
    } == {
        "applied": 2,
        "duplicate": 1,
        "gap": 1,
        "conflict": 1,
        "malformed": 1,
        "too_large": 2,
        "unauthorized": 2,
        "unavailable": 0,
        "error": 0,
    }
    assert counter(m, "pickedge_receiver_events_total", result="applied") == 5
    assert counter(m, "pickedge_receiver_events_total", result="duplicate") == 3 + 2
    pages = {
        o: counter(m, "pickedge_receiver_pages_total", outcome=o)
        for o in ("page", "bad_cursor", "bad_limit", "unauthorized")
    }
    assert pages == {"page": 2, "bad_cursor": 1, "bad_limit": 1, "unauthorized": 1}
    # every batch the receiver answered was timed (not the refused ones)
    assert counter(m, "pickedge_receiver_batch_seconds_count") == 7
    assert counter(m, "pickedge_receiver_event_delay_seconds_count") == 2
    assert counter(m, "pickedge_receiver_boxes") == 1
    labelled = {n for (n, labels) in m if any(k == "box" for k, _ in labels)}
    assert labelled == {"pickedge_receiver_silent_box_seconds"}


def shape(series: Series) -> set[tuple[str, tuple[str, ...]]]:
    """The series without their values or box names: what grows with a fleet."""
    return {(n, tuple(f"{k}={v}" for k, v in labels if k != "box")) for n, labels in series}


async def test_twenty_boxes_make_no_more_series_than_six_and_the_top_5_are_the_most_silent(
    db: str, secrets_dir: Path
) -> None:
    now = time.time()
    contact = [now]
    receiver = Receiver(db, clock=lambda: contact[0])
    boxes = [f"box-{n:02d}" for n in range(20)]
    for box in boxes:
        write_secret(secrets_dir, box, f"{box}-secret")
    shapes = []
    silent = []
    async with live_receiver(db, secrets_dir, receiver=receiver) as cloud:
        for group in (boxes[:6], boxes[6:]):
            # fresh metrics (their fleet figures are read at most every 15 s)
            cloud.service.metrics = ReceiverMetrics(cloud.receiver)
            for box in group:
                # box-00 was heard from first (an hour ago), box-19 last
                contact[0] = now - 3600 + 60 * boxes.index(box)
                answer = await post_raw(
                    cloud.url, batch([delta(-1)], box=box), box=box, secret=f"{box}-secret"
                )
                assert answer.status == 200
            m = await scrape(cloud.ops_url)
            shapes.append(shape(m))
            silent.append(
                {
                    dict(labels)["rank"]: (dict(labels)["box"], value)
                    for (n, labels), value in m.items()
                    if n == "pickedge_receiver_silent_box_seconds"
                }
            )
            known = boxes.index(group[-1]) + 1
            assert counter(m, "pickedge_receiver_boxes") == known
            assert counter(m, "pickedge_receiver_box_silence_seconds_count") == known
            assert counter(m, "pickedge_receiver_batches_total", outcome="applied") == len(group)
    assert shapes[0] == shapes[1]
    assert len(shapes[1]) < 60
    # ranks 1..5: the boxes longest without a batch, most silent first
    assert [silent[1][str(r)][0] for r in range(1, 6)] == boxes[:5]
    values = [silent[1][str(r)][1] for r in range(1, 6)]
    assert values == sorted(values, reverse=True)
    assert 3600 - 5 <= values[0] <= 3600 + 60


# --------------------------------------------------------------------------- logs and secrets


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """Every record of the process, formatted by the receiver's JsonFormatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def with_password(url: str) -> str:
    """``url`` carrying a canary password (the test cluster trusts, so it
    connects all the same): it must show nowhere either."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{CANARY_PASSWORD}@")


async def test_json_logs_name_the_box_and_no_secret_shows_anywhere(db: str, tmp_path: Path) -> None:
    secrets = tmp_path / "canary-secrets"
    secrets.mkdir(mode=0o700)
    write_secret(secrets, BOX, CANARY)
    url = with_password(db) if db.startswith("postgresql://") else db
    assert CANARY_PASSWORD in url or not db.startswith("postgresql://")
    oms = FailingOms()
    answers: list[bytes] = []
    with json_log() as log:
        async with (
            live_receiver(url, secrets, oms=oms) as cloud,
            SyncClient(cloud.url, BOX, CANARY) as client,
        ):
            for _ in range(3):  # one line per box per minute, not per request
                raw = await post_raw(cloud.url, batch([delta(-1)]), secret="wrong")
                answers.append(raw.payload + (raw.signature or "").encode())
            await post_raw(cloud.url, batch([delta(-1)]), box="zone-stranger")
            assert (await client.post_batch(batch([delta(-1), delta(-2)]))).status == 200
            conflict = await client.post_batch(batch([delta(+5)], first=2))
            assert conflict.doc["error"]["code"] == "epoch_conflict"
            failed = await client.post_batch(batch(STORY, first=3))  # the hook raises
            assert failed.status == 500
            for body in (b"junk", batch([delta(-1), delta(-2)])):
                raw = await post_raw(cloud.url, body, secret=CANARY)
                answers.append(raw.payload + (raw.signature or "").encode())
            metrics = (await get(cloud.ops_url + "/metrics"))[1]
            health = (await get(cloud.ops_url + "/readyz"))[1]
    lines = json_lines(log.getvalue())
    assert lines, "nothing was logged"
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
        assert line["ts"].endswith("Z") and line["level"] in ("info", "warning", "error")
    receiver_lines = [x for x in lines if x["logger"].startswith("cloud_sync.receiver")]
    bad_sig = [x for x in receiver_lines if "bad signature" in x["msg"]]
    assert [x["box"] for x in bad_sig] == [BOX]
    assert [x["box"] for x in receiver_lines if "unknown box" in x["msg"]] == ["zone-stranger"]
    conflicts = [x for x in receiver_lines if "epoch_conflict" in x["msg"]]
    assert [(x["box"], x["epoch"], x["level"]) for x in conflicts] == [(BOX, EPOCH, "warning")]
    failures = [x for x in receiver_lines if x["level"] == "error"]
    assert [x["box"] for x in failures] == [BOX]
    assert "the OMS refused a shipment" in failures[0]["exc"]
    everything = log.getvalue() + metrics + health + repr(answers)
    assert CANARY not in everything and CANARY_PASSWORD not in everything
    assert repr(cloud.service.secrets) == f"DirectorySecrets({str(secrets)!r})"


# --------------------------------------------------------------------------- the CLI


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """``pickedge cloud-receiver ARGS`` in-process (the root logger restored:
    the command configures it for a real process)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(cloud_receiver_group, list(args), env=env)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_migrate_only_enqueue_register_and_rotate_secret(db: str, tmp_path: Path) -> None:
    result = run("--db", db, "--migrate-only")
    assert result.exit_code == 0, result.output
    dialect = "postgresql" if db.startswith("postgresql") else "sqlite"
    assert result.stdout == f"migrated: {dialect}\n"
    assert run("--migrate-only", env={"PICKEDGE_RECEIVER_DB": db}).exit_code == 0  # idempotent

    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps([{"type": "picker", "data": {"id": "p1"}}] * 2))
    result = run("--db", db, "enqueue", "--box", BOX, str(changes))
    assert (result.exit_code, result.stdout) == (0, f"{BOX}: 2 change(s), feed now at 2\n")
    for box in ("zone-b", "zone-c"):
        result = run("--db", db, "register", "--box", box, "--site", "berlin")
        assert (result.exit_code, result.stdout) == (0, f"{box}: site berlin\n")
    result = run("--db", db, "enqueue", "--site", "berlin", str(changes))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "zone-b: 2 change(s), feed now at 2",
        "zone-c: 2 change(s), feed now at 2",
    ]
    result = run("--db", db, "enqueue", "--site", "hamburg", str(changes))
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no box is registered to site hamburg" in result.stderr

    secret = tmp_path / "new-secret"
    secret.write_text("rotated-secret\n")
    result = run("--db", db, "rotate-secret", "--box", BOX, "--secret-file", str(secret))
    assert result.exit_code == 0, result.output
    assert "previous one is accepted for 3600 s" in result.stdout
    assert "rotated-secret" not in result.output

    r = Receiver(db)
    try:
        assert [c["type"] for c in r.page(BOX, None, 10).doc["changes"]] == ["picker"] * 2
        assert len(r.page("zone-c", None, 10).doc["changes"]) == 2
        with r.db.transaction() as tx:
            sites = dict(tx.all("SELECT box, site FROM boxes WHERE site IS NOT NULL"))
        assert sites == {"zone-b": "berlin", "zone-c": "berlin"}
        [signer] = TableSecrets(r.db).signers(BOX)
        assert signer.verify_request(signer.request("GET", "/x", b""), "GET", "/x", b"")
        assert signer.request("GET", "/x", b"") != TableSecrets(r.db).signers(BOX)[0].request(
            "GET", "/y", b""
        )
    finally:
        r.close()


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, secrets_dir: Path) -> None:
    db = str(tmp_path / "receiver.db")
    changes = tmp_path / "changes.json"
    changes.write_text('[{"type": "picker", "data": {"id": "p1"}}]')
    empty = tmp_path / "empty-secret"
    empty.write_text("\n")
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    cases: dict[str, tuple[list[str], str]] = {
        "no database": ([], "--db"),
        "no database for enqueue": (["enqueue", "--box", BOX, str(changes)], "--db"),
        "bad listen": (
            ["--db", db, "--listen", "nope", "--secrets", str(secrets_dir)],
            "HOST:PORT",
        ),
        "bad ops listen": (["--db", db, "--ops-listen", "1.2.3.4:99999"], "HOST:PORT"),
        "no secrets": (["--db", db], "exactly one of --secrets"),
        "both secrets": (
            ["--db", db, "--secrets", str(secrets_dir), "--secrets-table"],
            "exactly one of --secrets",
        ),
        "missing secrets dir": (["--db", db, "--secrets", str(tmp_path / "nope")], "not exist"),
        "half of TLS": (
            ["--db", db, "--secrets", str(secrets_dir), "--tls-cert", str(cert)],
            "go together",
        ),
        "bad TLS": (
            [
                "--db",
                db,
                "--secrets",
                str(secrets_dir),
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(cert),
            ],
            "TLS certificate",
        ),
        "unopenable SQLite": (
            ["--db", str(tmp_path / "no" / "dir" / "x.db"), "--migrate-only"],
            "cannot open SQLite database",
        ),
        "not a database": (["--db", str(cert), "--migrate-only"], "cannot open SQLite database"),
        "box and site": (
            ["--db", db, "enqueue", "--box", BOX, "--site", "s", str(changes)],
            "exactly one of --box and --site",
        ),
        "neither box nor site": (["--db", db, "enqueue", str(changes)], "exactly one"),
        "changes not JSON": (["--db", db, "enqueue", "--box", BOX, str(cert)], "not JSON"),
        "changes not a list": (
            ["--db", db, "enqueue", "--box", BOX, str(write(tmp_path, {"type": "picker"}))],
            "non-empty JSON list",
        ),
        "a change without a type": (
            ["--db", db, "enqueue", "--box", BOX, str(write(tmp_path, [{"data": {}}]))],
            "non-empty str type",
        ),
        "an empty list": (
            ["--db", db, "enqueue", "--box", BOX, str(write(tmp_path, []))],
            "non-empty JSON list",
        ),
        "bad box id": (["--db", db, "register", "--box", "../etc", "--site", "s"], "box ids"),
        "bad box id to rotate": (
            ["--db", db, "rotate-secret", "--box", "a b", "--secret-file", str(changes)],
            "box ids",
        ),
        "empty secret": (
            ["--db", db, "rotate-secret", "--box", BOX, "--secret-file", str(empty)],
            "the secret is empty",
        ),
    }
    for name, (args, needle) in cases.items():
        line = one_line_error(run(*args))
        assert needle in line, (name, line)
    # click's own usage errors: exit 2 too
    for args in (["--threads", "0"], ["--nope"], ["enqueue", "--box"]):
        result = run(*args)
        assert result.exit_code == 2 and "Error:" in result.stderr, args


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / f"doc-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(doc))
    return path


def test_every_example_in_the_help_parses() -> None:
    """The examples an operator copies from ``--help`` are commands click
    accepts (``--db`` belongs to ``cloud-receiver``, before the subcommand)."""
    text = run("--help").stdout
    examples = [
        line.strip() for line in text.split("Examples:")[1].splitlines() if "pickedge" in line
    ]
    assert len(examples) >= 4
    for example in examples:
        args = shlex.split(example.replace("…", "x"))[2:]
        result = run(*args, "--help")  # parsed as given; --help stops before it runs
        assert result.exit_code == 0, (example, result.stderr)
        assert "Usage:" in result.stdout


# --------------------------------------------------------------------------- a real process


async def test_a_real_receiver_process_answers_a_signed_batch(
    pg_url: str, tmp_path: Path, processes: ProcessReaper
) -> None:
    """``pickedge cloud-receiver --secrets-table`` after ``rotate-secret``, the
    database URL (with a password) from the environment: it answers a signed
    batch and a page, counts them, logs JSON without the secret or password,
    and stops on SIGTERM with exit 0."""
    url = with_password(pg_url)
    secret_file = tmp_path / "secret"
    secret_file.write_text(CANARY + "\n")
    env = {**os.environ, "PICKEDGE_RECEIVER_DB": url}
    assert (
        run("rotate-secret", "--box", BOX, "--secret-file", str(secret_file), env=env).exit_code
        == 0
    )
    port, ops = free_port(), free_port()
    log = tmp_path / "receiver.log"
    with log.open("wb") as err:
        proc = await processes.exec(
            sys.executable,
            "-m",
            "edge",
            "cloud-receiver",
            "--secrets-table",
            "--listen",
            f"127.0.0.1:{port}",
            "--ops-listen",
            f"127.0.0.1:{ops}",
            "--threads",
            "2",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
    ops_url = f"http://127.0.0.1:{ops}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.returncode is None, log.read_bytes()[-2000:]
        try:
            if (await get(ops_url + "/readyz"))[0] == 200:
                break
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, log.read_bytes()[-2000:]
        await asyncio.sleep(0.1)

    oms = Receiver(pg_url)
    try:
        oms.enqueue(BOX, {"type": "picker", "data": {"id": "p1"}})
    finally:
        oms.close()
    async with SyncClient(f"http://127.0.0.1:{port}", BOX, CANARY) as client:
        reply = await client.post_batch(batch([delta(-1), delta(-2)]))
        assert (reply.status, reply.doc, reply.signed) == (200, echo(2, 1, 2), True)
        page = await client.get_changes(None, 10)
        assert page.signed and page.doc["changes"] == [{"type": "picker", "data": {"id": "p1"}}]
    async with SyncClient(f"http://127.0.0.1:{port}", BOX, "wrong") as wrong:
        assert (await wrong.post_batch(batch([delta(-1)]))).status == 401
    metrics = await scrape(ops_url)
    assert counter(metrics, "pickedge_receiver_batches_total", outcome="applied") == 1
    assert counter(metrics, "pickedge_receiver_batches_total", outcome="unauthorized") == 1
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 15) == 0

    text = log.read_text()
    lines = json_lines(text)
    started = [x for x in lines if x["msg"].startswith("receiver ")]
    assert len(started) == 1 and f"http://127.0.0.1:{port}" in started[0]["msg"]
    assert f"http://127.0.0.1:{ops}" in started[0]["msg"]
    assert [x["box"] for x in lines if "bad signature" in x["msg"]] == [BOX]
    assert CANARY not in text and CANARY_PASSWORD not in text
    r = Receiver(pg_url)
    try:
        assert r.acked(BOX, EPOCH) == 2 and r.net_stock(BOX) == {("SKU-1", "A01-01"): -3}
    finally:
        r.close()
    with psycopg.connect(pg_url) as conn:  # its connections are gone with it
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
            " 'pickedge-cloud-receiver' AND datname = current_database()"
        ).fetchone()
    assert row == (0,)
