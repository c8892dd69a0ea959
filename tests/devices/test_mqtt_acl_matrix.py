"""Issue 14, MQTT confined: the broker files ``pickedge mosquitto-config`` makes
hold on a real Mosquitto for the whole device x topic x action matrix.

Users: every MQTT device (two Impinj readers, two Zebra readers — one with an
``events_topic`` — and an MQTT scanner), the daemon's user, and users that must
not connect at all (anonymous, every user with a wrong password, a device with
another device's password, a disabled device and a serial device, which get no
user). Topics: every device topic, foreign ones (another system's, a disabled
device's, a level below a device topic) and two wildcards. Actions: publish and
subscribe. The expected outcome of every cell comes from the generated ``acl``
(parsed here, and first checked to be the intended policy: a device publishes
to its driver's topics only and reads nothing; the daemon reads every device
topic and publishes nothing).

How a cell is observed, without waiting out timeouts:

- publish: the user publishes at QoS 1; the broker routes the message to its
  subscribers before it sends the PUBACK (whose MQTT v5 reason code must be
  0x87 "not authorized" for a denied publish), so a positive control published
  right after by an observer arrives after the cell's message, if that was
  delivered at all. Observers: a test-only ``spy`` user reading ``#`` (appended
  to the generated files; it is the only one who can see a foreign topic) and
  the daemon subscribed to every device topic.
- subscribe: one connection per (user, filter). Mosquitto grants the SUBACK
  (v5 reason codes are recorded) and filters each delivery by the read ACL, so
  every concrete topic then gets one message from a user allowed to publish it,
  and each subscriber makes a round trip (UNSUBSCRIBE) afterwards: the broker
  queues deliveries to a connection in order, so when the UNSUBACK is back every
  message it was going to deliver is in the client's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.client import topic_matches_sub

from edge.cli.mosquitto import password_line
from tests.support.mosquitto import find_mosquitto, free_port
from tests.support.mosquitto_config import (
    DAEMON_PASSWORD,
    DAEMON_USER,
    generate,
    start_generated,
    write_config,
)
from tests.support.mosquitto_config import DEVICES as PACKAGING_DEVICES

pytestmark = pytest.mark.timeout(90)

#: the packaging tests' devices and two more dock portals (after them: the
#: order of [[devices]] does not matter to the ACL)
DEVICES = (
    PACKAGING_DEVICES
    + """
[[devices]]
id = "dock-3-portal"
driver = "impinj-iot"
role = "dock_door"
topic = "impinj/dock-3/events"
bound_to = "dock-3"

[[devices]]
id = "dock-4-portal"
driver = "zebra-iotc"
role = "dock_door"
topic = "zebra/fx9600-4/data"
bound_to = "dock-4"
"""
)

#: what each enabled MQTT device publishes on: the filters its driver subscribes
#: to (impinj-iot and mqtt-scanner: ``topic``; zebra-iotc: ``topic`` and
#: ``events_topic`` when set)
OWN = {
    "dock-1-portal": ("impinj/dock-1/events",),
    "dock-2-portal": ("zebra/fx9600-2/data", "zebra/fx9600-2/events"),
    "dock-3-portal": ("impinj/dock-3/events",),
    "dock-4-portal": ("zebra/fx9600-4/data",),
    "pack-1-mqtt": ("scanners/pack-1",),
}
DEVICE_TOPICS = tuple(t for topics in OWN.values() for t in topics)
FOREIGN = ("erp/orders/new", "impinj/old/events", "impinj/dock-1/events/extra")
CONCRETE = DEVICE_TOPICS + FOREIGN
WILDCARDS = ("#", "impinj/+/events")
TOPICS = CONCRETE + WILDCARDS
USERS = (*OWN, DAEMON_USER)  # the users that connect

SPY = "acl-matrix-spy"  # test-only observer: reads and writes everything
SPY_PASSWORD = "spy-password"
CONTROL_TOPIC = DEVICE_TOPICS[0]  # the spy and the daemon both read it

NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


@dataclass
class Acl:
    read: dict[str, list[str]] = field(default_factory=dict)
    write: dict[str, list[str]] = field(default_factory=dict)

    def may(self, user: str, access: str, topic: str) -> bool:
        filters = (self.read if access == "read" else self.write).get(user, [])
        return any(topic_matches_sub(f, topic) for f in filters)


def parse_acl(text: str) -> Acl:
    """Mosquitto's ``acl_file`` format, the subset the generator writes."""
    acl = Acl()
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "user":
            user = rest
            acl.read.setdefault(user, [])
            acl.write.setdefault(user, [])
            continue
        assert word == "topic" and user is not None, f"unexpected acl line {line!r}"
        access, _, topic = rest.partition(" ")
        if access not in ("read", "write", "readwrite"):
            access, topic = "readwrite", rest
        if access in ("read", "readwrite"):
            acl.read[user].append(topic)
        if access in ("write", "readwrite"):
            acl.write[user].append(topic)
    return acl


def client(port: int, user: str | None, password: str | None, tag: str) -> aiomqtt.Client:
    auth = {} if user is None else {"username": user, "password": password}
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"matrix-{tag}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=10,
        **auth,
    )


def puback_codes(c: aiomqtt.Client) -> list[int]:
    """Record the MQTT v5 reason code of every PUBACK ``c`` gets (aiomqtt's
    ``publish`` returns none): wraps paho's ``on_publish``."""
    codes: list[int] = []
    paho = c._client
    inner = paho.on_publish

    def on_publish(cl, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        codes.append(reason_code.value)
        inner(cl, userdata, mid, reason_code, properties)

    paho.on_publish = on_publish
    return codes


async def until_control(c: aiomqtt.Client, control: bytes) -> list[tuple[str, bytes]]:
    """The messages ``c`` receives before ``control`` (which must come)."""
    seen: list[tuple[str, bytes]] = []
    async with asyncio.timeout(5):
        async for message in c.messages:
            assert isinstance(message.payload, bytes)
            if message.payload == control:
                return seen
            seen.append((str(message.topic), message.payload))
    raise AssertionError("unreachable")


async def drain(c: aiomqtt.Client) -> list[tuple[str, bytes]]:
    """The messages already in ``c``'s queue."""
    got = []
    for _ in range(len(c.messages)):
        message = await anext(aiter(c.messages))
        assert isinstance(message.payload, bytes)
        got.append((str(message.topic), message.payload))
    return got


def check_policy(acl: Acl) -> None:
    """The generated ACL is the intended one (before it is used as the oracle)."""
    assert set(acl.read) == set(acl.write) == {DAEMON_USER, *OWN}
    assert sorted(acl.read[DAEMON_USER]) == sorted(DEVICE_TOPICS)
    assert acl.write[DAEMON_USER] == []
    for device, topics in OWN.items():
        assert acl.read[device] == [] and acl.write[device] == list(topics), device


async def test_every_cell_of_the_device_topic_matrix(tmp_path: Path) -> None:
    assert find_mosquitto() is not None
    started = time.monotonic()
    port = free_port()
    out = tmp_path / "broker"
    done = await asyncio.to_thread(generate, write_config(tmp_path, port, devices=DEVICES), out)
    assert done.returncode == 0, done.stderr
    acl = parse_acl((out / "acl").read_text())
    check_policy(acl)
    passwords = {d: (out / "passwords" / d).read_text().strip() for d in OWN}
    passwords[DAEMON_USER] = DAEMON_PASSWORD
    with (out / "acl").open("a") as f:
        f.write(f"\n# test only: the matrix's observer\nuser {SPY}\ntopic readwrite #\n")
    with (out / "passwd").open("a") as f:
        f.write(password_line(SPY, SPY_PASSWORD))

    broker = await asyncio.to_thread(start_generated, tmp_path, out, port)
    wrong: list[str] = []  # every cell whose outcome is not the expected one
    try:
        # -- users that cannot connect: every one of their cells is denied
        refused: dict[str, tuple[str | None, str | None]] = {
            "anonymous": (None, None),
            **{f"{u} + wrong password": (u, "not-" + passwords[u]) for u in USERS},
            "dock-1-portal + pack-1-mqtt's password": ("dock-1-portal", passwords["pack-1-mqtt"]),
            "old-reader (disabled)": ("old-reader", passwords["dock-1-portal"]),
            "pack-1-serial (serial)": ("pack-1-serial", passwords["dock-1-portal"]),
        }

        async def connect_refused(name: str, user: str | None, secret: str | None) -> None:
            try:
                async with client(port, user, secret, f"refused-{name}"):
                    wrong.append(f"{name}: connected")
            except MqttConnectError as e:
                code = getattr(e.rc, "value", e.rc)
                if code not in (NOT_AUTHORIZED, BAD_CREDENTIALS):
                    wrong.append(f"{name}: refused with reason code {code!r}")

        await asyncio.gather(*(connect_refused(n, *creds) for n, creds in refused.items()))

        async with contextlib.AsyncExitStack() as stack:

            async def connect(user: str, secret: str, tag: str) -> aiomqtt.Client:
                return await stack.enter_async_context(client(port, user, secret, tag))

            spy = await connect(SPY, SPY_PASSWORD, "spy")
            await spy.subscribe("#", qos=1)
            observer = await connect(DAEMON_USER, DAEMON_PASSWORD, "daemon-observer")
            for topic in DEVICE_TOPICS:
                await observer.subscribe(topic, qos=1)
            publishers = {u: await connect(u, passwords[u], f"pub-{u}") for u in USERS}
            codes = {u: puback_codes(c) for u, c in publishers.items()}

            # -- publish: len(USERS) x len(TOPICS) cells
            for i, (user, topic) in enumerate((u, t) for u in USERS for t in TOPICS):
                cell = f"publish {user} -> {topic}"
                payload = f"pub {i}".encode()
                if topic in WILDCARDS:  # MQTT forbids it: never sent
                    try:
                        await publishers[user].publish(topic, payload, qos=1)
                        wrong.append(f"{cell}: the client sent a wildcard topic")
                    except ValueError:
                        pass
                    continue
                await publishers[user].publish(topic, payload, qos=1)
                control = f"control {i}".encode()
                await spy.publish(CONTROL_TOPIC, control, qos=1)
                to_spy = await until_control(spy, control)
                to_daemon = await until_control(observer, control)
                allowed = acl.may(user, "write", topic)
                if ((topic, payload) in to_spy) != allowed:
                    wrong.append(f"{cell}: delivered={not allowed}, allowed={allowed}")
                if ((topic, payload) in to_daemon) != (
                    allowed and acl.may(DAEMON_USER, "read", topic)
                ):
                    wrong.append(f"{cell}: the daemon got it: {(topic, payload) in to_daemon}")
                code = codes[user].pop()
                if code != (0 if allowed else NOT_AUTHORIZED):
                    wrong.append(f"{cell}: PUBACK reason code {code:#x}")

            # -- subscribe: len(USERS) x len(TOPICS) cells, one connection each
            subscribers = {
                (u, t): await connect(u, passwords[u], f"sub-{u}-{t}")
                for u in USERS
                for t in TOPICS
            }
            granted = await asyncio.gather(
                *(c.subscribe(t, qos=1) for (_, t), c in subscribers.items())
            )
            suback = {
                cell: codes[0].value for cell, codes in zip(subscribers, granted, strict=True)
            }
            owner = {t: publishers[d] for d, topics in OWN.items() for t in topics}
            for topic in CONCRETE:  # one message per topic, from a user allowed to send it
                await owner.get(topic, spy).publish(topic, f"sub {topic}".encode(), qos=1)
            # positive control: every one was sent and routed
            await spy.publish(CONTROL_TOPIC, b"sub control", qos=1)
            routed = await until_control(spy, b"sub control")
            assert routed == [(t, f"sub {t}".encode()) for t in CONCRETE]
            # barrier: an UNSUBACK comes after every delivery already queued
            await asyncio.gather(*(c.unsubscribe(t) for (_, t), c in subscribers.items()))
            for (user, flt), c in subscribers.items():
                got = {t for t, _ in await drain(c)}
                expected = {
                    t for t in CONCRETE if topic_matches_sub(flt, t) and acl.may(user, "read", t)
                }
                if got != expected:
                    wrong.append(
                        f"subscribe {user} <- {flt}: got {sorted(got)}, expected {sorted(expected)}"
                    )
                if expected and suback[user, flt] >= 0x80:
                    wrong.append(f"subscribe {user} <- {flt}: SUBACK {suback[user, flt]:#x}")
            denied_codes = {
                suback[cell]
                for cell in subscribers
                if not any(
                    acl.may(cell[0], "read", t) for t in CONCRETE if topic_matches_sub(cell[1], t)
                )
            }
    finally:
        await asyncio.to_thread(broker.stop)

    cells = len(USERS) * len(TOPICS) * 2 + len(refused) * len(TOPICS) * 2
    print(
        f"\n{cells} cells ({len(USERS)} users connected x {len(TOPICS)} topics x 2 actions, "
        f"{len(refused)} users refused at CONNECT); SUBACK codes of denied subscriptions: "
        f"{sorted(denied_codes)}; {time.monotonic() - started:.1f} s"
    )
    assert not wrong, "\n".join(wrong)
