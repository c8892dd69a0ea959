"""Configuration: TOML file + environment, typed and validated in one place.

``load_config(path)`` reads the file with :mod:`tomllib`, applies overrides from
environment variables named ``PICKEDGE__SECTION__KEY`` (for example
``PICKEDGE__API__PORT=8080``), validates every value against the dataclasses
below and returns a frozen :class:`Config`. It collects *every* problem before
failing, each with its key path and, where the key came from the file, its
line; unknown keys are errors with a did-you-mean. Secrets are never part of
the file: ``*_file`` keys name files whose content is read here, kept in
:class:`Secret` (whose ``repr`` hides it) and never logged.

Every value remembers where it came from (default, ``file:LINE``, ``env:NAME``);
``pickedge check-config`` prints that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.tls import TlsConfigError, client_context, server_context
from devices.driver import DeviceSpec, MqttSettings
from devices.errors import DeviceConfigError
from devices.events import DeviceRole
from devices.registry import DRIVERS, driver_class
from edge.errors import ConfigError

ENV_PREFIX = "PICKEDGE__"


class Secret:
    """A secret read from a file. ``str()`` and ``repr()`` never show it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


# --------------------------------------------------------------------------- sections
# Field metadata: "help" (one line for check-config and docs), optional "min"/"max".


def _f(default: Any, help: str, **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True, slots=True)
class BoxConfig:
    id: str = _f("", "This box's id, unique in the fleet (sync-v1 X-Box-Id).")
    secret_file: str = _f("", "File holding the sync-v1 shared secret (one line).")


@dataclass(frozen=True, slots=True)
class CloudConfig:
    url: str = _f("", "Base URL of the cloud OMS (sync-v1); empty: no sync.")
    timeout_s: float = _f(10.0, "Timeout of one sync request.", min=0.1, max=300)
    batch_max_events: int = _f(500, "Most events in one upstream batch.", min=1, max=100_000)
    batch_max_bytes: int = _f(
        1_048_576, "Largest upstream batch body in bytes.", min=1024, max=1_048_576
    )
    backoff_max_s: float = _f(60.0, "Cap of the retry back-off.", min=1, max=3600)
    pull_interval_s: float = _f(5.0, "Pause between downstream polls.", min=0.1, max=3600)
    retention_days: float = _f(7.0, "Acked outbox rows are pruned after this.", min=0, max=3650)
    ca_file: str = _f(
        "",
        "PEM CA bundle the cloud's TLS certificate is checked against; empty: the system's "
        "CAs. Verification is always on (docs/security.md).",
    )


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: str = _f("var/pickedge.db", "SQLite database file.")
    busy_timeout_ms: int = _f(5000, "How long a connection waits for a lock.", min=0, max=600_000)
    max_backlog: int = _f(2_000_000, "Unsent outbox events at which new work is refused.", min=1000)
    warn_backlog: int = _f(500_000, "Unsent outbox events at which an alert is raised.", min=100)
    checkpoint_interval_s: float = _f(30.0, "WAL checkpoint period when idle.", min=1, max=3600)
    wal_limit_mb: int = _f(64, "The WAL is truncated back to this size.", min=1, max=4096)
    retention_days: float = _f(30.0, "Finished tours and scans are purged after this.", min=1)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = _f("127.0.0.1", "Address the PDA API listens on.")
    port: int = _f(8470, "TCP port of the PDA API.", min=0, max=65535)
    max_body_bytes: int = _f(65536, "Largest request body accepted.", min=1024, max=16_777_216)
    token_ttl_s: int = _f(43200, "Lifetime of a picker session token.", min=60)
    metrics_token_file: str = _f(
        "", "File holding the bearer token Prometheus scrapes /metrics with; empty: no /metrics."
    )
    # Connection limits (issue 14): a hostile floor network must not lock the PDAs out.
    header_timeout_s: float = _f(
        5.0,
        "A request's line and headers must arrive within this after its first byte (a new "
        "connection's after connecting), else the connection is closed.",
        min=0.5,
        max=120,
    )
    body_timeout_s: float = _f(
        10.0, "A request's body must arrive within this after its headers.", min=0.5, max=600
    )
    idle_timeout_s: float = _f(
        15.0, "A kept-alive connection with no request for this long is closed.", min=0.5, max=3600
    )
    max_connections: int = _f(
        768,
        "Open PDA API connections at most (also capped at the open-file limit less 256); a "
        "new one beyond it closes the slowest connection not serving a request, or is closed.",
        min=16,
        max=1_000_000,
    )
    max_connections_per_address: int = _f(
        64,
        "Open connections from one client address (IPv6: one /64) at most; beyond it, as "
        "max_connections within that address.",
        min=1,
        max=1_000_000,
    )
    max_pending_websockets: int = _f(
        128,
        "WebSockets that have not yet authenticated, at most; more get 503.",
        min=1,
        max=1_000_000,
    )
    max_pending_websockets_per_address: int = _f(
        8,
        "WebSockets from one client address that have not yet authenticated, at most.",
        min=1,
        max=1_000_000,
    )
    # TLS (issue 14): off by default on an isolated floor network (docs/security.md).
    tls_cert_file: str = _f(
        "", "PEM certificate (leaf, then chain) to serve HTTPS with; empty: plain HTTP."
    )
    tls_key_file: str = _f(
        "", "PEM private key of tls_cert_file, private to the service user like every secret."
    )


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = _f("127.0.0.1", "Broker on the box.")
    port: int = _f(1883, "Broker port.", min=1, max=65535)
    username: str = _f("pickedge", "Broker user of the daemon.")
    password_file: str = _f("", "File holding the broker password; empty: no password.")
    client_id_prefix: str = _f("pickedge", "Prefix of MQTT client ids (one per device).")
    # TLS to a remote broker (issue 14); the broker on the box is reached in plain.
    tls: bool = _f(False, "Connect over TLS (on as well when tls_ca_file is set).")
    tls_ca_file: str = _f("", "PEM CA bundle the broker's certificate is checked against.")
    tls_cert_file: str = _f("", "PEM client certificate, for brokers that require one.")
    tls_key_file: str = _f("", "PEM key of tls_cert_file, private to the service user.")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = _f("info", "Log level.")
    format: Literal["text", "json"] = _f("text", "One line per event: text or JSON.")


@dataclass(frozen=True, slots=True)
class DepotConfig:
    x: float = _f(0.0, "Depot x in metres on the front cross aisle.")
    y: float = _f(0.0, "Depot y (routing-v1: always 0).")


@dataclass(frozen=True, slots=True)
class LayoutConfig:
    """The routing-v1 layout of the zone (``kind = "blocks"``)."""

    kind: Literal["blocks"] = _f("blocks", "Layout kind (routing-v1).")
    aisles: int = _f(10, "Number of parallel pick aisles.", min=1, max=1000)
    aisle_pitch_m: float = _f(3.0, "Distance between aisle centre lines.", min=0.1)
    blocks: int = _f(1, "Blocks (cross aisles - 1).", min=1, max=8)
    block_length_m: float = _f(20.0, "Length of one block.", min=0.1)
    depot: DepotConfig = field(default_factory=DepotConfig, metadata={"help": "The depot."})


@dataclass(frozen=True, slots=True)
class ShippingConfig:
    """Pack and ship: the box's SSCC range and the dock doors (issue 10)."""

    gs1_prefix: str = _f(
        "", "The site's GS1 company prefix (7-10 digits); empty: cartons cannot be closed."
    )
    sscc_extension: int = _f(0, "SSCC extension digit this box uses.", min=0, max=9)
    sscc_first: int = _f(1, "First serial of this box's SSCC range.", min=0)
    sscc_last: int = _f(999_999, "Last serial of this box's SSCC range.", min=0)
    sscc_low: int = _f(1000, "Serials left in the range that raise an alert.", min=0)
    door: str = _f("", "Dock door a shipment leaves by unless its carrier has one.")
    carrier_doors: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Dock door per carrier, e.g. {DHL = 'D1'}."}
    )
    departure_window_s: float = _f(
        120.0, "Seconds after a shipment's first carton is seen for the rest.", min=1.0
    )
    label_required: bool = _f(
        True,
        "An order ships once its labels printed (false: at its last CLOSE; labels still print "
        "where the station has a printer).",
    )
    cart_labels: bool = _f(
        True, "The orders of one cart (picked on one tour) print their labels in one job."
    )


@dataclass(frozen=True, slots=True)
class FloorConfig:
    """Exceptions on the floor (issue 12)."""

    put_back_alert_s: float = _f(
        1800.0, "A put-back line open this long raises a warn alert (cleared once back).", min=1.0
    )
    zero_checks: bool = _f(
        False,
        "A short pick 'empty', or a pick that leaves a location at zero, creates a zero "
        "check (a one-location blind count).",
    )


@dataclass(frozen=True, slots=True)
class PeakConfig:
    """Peak protection (issue 13): under a surge, non-core work waits (edge.peak)."""

    enabled: bool = _f(True, "Defer non-core work while the inflow stays above rate_per_s.")
    rate_per_s: float = _f(
        40.0,
        "Scans and device reads a second (mean over window_s) at which peak mode begins.",
        min=0.1,
        max=1_000_000,
    )
    window_s: float = _f(10.0, "The window the inflow's mean is taken over.", min=1, max=3600)
    leave_ratio: float = _f(
        0.5, "Peak mode ends when the mean falls below rate_per_s times this.", min=0.01, max=1
    )


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Alert rules evaluated on the box (issue 13, edge.alerting; docs/operations.md)."""

    enabled: bool = _f(True, "Evaluate the alert rules (false: none, and open ones clear).")
    interval_s: float = _f(
        15.0, "Seconds between two evaluations of the rules.", min=0.05, max=3600
    )
    low_stock: bool = _f(True, "Alert when a SKU's on-hand in the zone falls under its threshold.")
    low_stock_default: int = _f(
        0, "Threshold of every SKU stocked in the zone (0: only the SKUs listed).", min=0
    )
    low_stock_skus: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Threshold per SKU, overriding the default, e.g. {'SKU-1' = 12}."},
    )
    low_stock_margin: int = _f(
        2, "A low-stock alert clears once on-hand reaches threshold + this.", min=0
    )
    low_stock_target_factor: float = _f(
        2.0, "The replenishment hint brings on-hand to threshold times this.", min=1.0, max=100
    )
    device_offline: bool = _f(True, "Alert when a device stays disconnected.")
    device_offline_s: float = _f(60.0, "Seconds a device is down before it alerts.", min=0.0)
    printer_paper_out: bool = _f(True, "Alert while a label printer reports paper out.")
    backlog_age: bool = _f(True, "Alert when the oldest unsent outbox event gets old.")
    backlog_age_min: float = _f(
        15.0, "Minutes the oldest unsent event may wait before it alerts.", min=0.001
    )
    disk_low: bool = _f(True, "Alert when the store's disk has little free space.")
    disk_free_pct: float = _f(10.0, "Free space (percent) under which it alerts.", min=0, max=100)
    disk_margin_pct: float = _f(
        2.0, "The disk-low alert clears above disk_free_pct + this.", min=0, max=100
    )
    disk_filling: bool = _f(True, "Alert when the disk fills within disk_full_h at its rate.")
    disk_full_h: float = _f(
        24.0, "Hours to full (at the current rate) under which it alerts.", min=0.001
    )
    disk_window_s: float = _f(
        3600.0, "Window the disk's fill rate is measured over.", min=1.0, max=7 * 86400
    )
    exception_rate: bool = _f(True, "Alert when too many finished tasks needed an exception.")
    exception_rate_max: float = _f(
        0.08, "Share of finished tasks with an exception above which it alerts.", min=0, max=1
    )
    exception_rate_margin: float = _f(
        0.01, "The alert clears at exception_rate_max less this.", min=0, max=1
    )
    exception_window_h: float = _f(
        24.0, "Window of finished tasks the rate is taken over.", min=0.001
    )
    exception_min_tasks: int = _f(50, "Fewest finished tasks in the window to judge by.", min=1)
    rfid_overflow: bool = _f(True, "Alert when an RFID reader reports it dropped reads.")
    rfid_overflow_clear_s: float = _f(
        300.0, "An RFID overflow alert clears after this long without another.", min=0.0
    )
    clock_jump: bool = _f(True, "Alert when the wall clock jumps against the monotonic clock.")
    clock_jump_s: float = _f(60.0, "Seconds of jump between two evaluations that alert.", min=0.001)
    clock_jump_clear_s: float = _f(
        600.0, "A clock-jump alert clears after this long without another jump.", min=0.0
    )


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long finished work and people's data stay on the box, in days of box
    uptime (issue 13; finished tours, scans and tasks: ``[store]
    retention_days``; acked outbox rows: ``[cloud] retention_days``)."""

    shipments_days: float = _f(
        30.0,
        "Confirmed shipments, their cartons and label print jobs are purged after this.",
        min=1,
    )
    pickers_days: float = _f(
        90.0,
        "Inactive pickers (name, badge) are purged after this; their ids stay in history.",
        min=1,
    )
    alerts_days: float = _f(30.0, "Cleared alerts are purged after this.", min=1)
    purge_interval_s: float = _f(
        3600.0, "How often the purge runs (box uptime).", min=1, max=86_400
    )


@dataclass(frozen=True, slots=True)
class CartsConfig:
    """Cart picking: several orders on one cart, one tote each (issue 11)."""

    totes: int = _f(
        1, "Orders (totes) one cart carries; 1: one order per tour, no cart.", min=1, max=24
    )
    units: int = _f(60, "Most units one cart carries.", min=1, max=100_000)
    max_wait_s: float = _f(
        900.0,
        "A task older than this goes on the next cart before any younger one, "
        "whatever their priorities.",
        min=0.0,
    )
    propose_ms: int = _f(
        100, "Budget of the batch search when a picker starts a cart.", min=1, max=1000
    )
    pool: int = _f(200, "Most open tasks a proposal considers (the most urgent).", min=1)
    improve_s: float = _f(
        5.0,
        "Seconds between background improvements of the proposals (0: none); they run "
        "in a separate, lower-priority process.",
        min=0.0,
    )
    improve_ms: int = _f(1000, "Budget of one background improvement.", min=10, max=60_000)
    confirm_put: bool = _f(True, "Each stop's units are put into their tote by scanning it.")
    tote_pattern: str = _f(
        r"^TOTE-[A-Z0-9-]{1,32}$", "Regular expression of a tote label.", pattern=True
    )
    cart_pattern: str = _f(
        r"^CART-[A-Z0-9-]{1,32}$",
        "Regular expression of a cart label (scanning one starts a cart like START).",
        pattern=True,
    )

    @property
    def enabled(self) -> bool:
        return self.totes > 1


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str = _f("", "Unique id of the device.")
    driver: str = _f("", "Driver: " + ", ".join(sorted(DRIVERS)) + ".")
    role: Literal["pack_station", "dock_door", "pick_zone"] = _f("pick_zone", "Where it stands.")
    url: str = _f("", "Serial URL or path (serial drivers).")
    topic: str = _f("", "MQTT topic filter (MQTT drivers).")
    bound_to: str = _f("", "What it serves, e.g. a pack station or dock door id.")
    enabled: bool = _f(True, "Set false to keep the entry but not run it.")
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Driver options (see docs)."}
    )


@dataclass(frozen=True, slots=True)
class Config:
    box: BoxConfig = field(default_factory=BoxConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    shipping: ShippingConfig = field(default_factory=ShippingConfig)
    carts: CartsConfig = field(default_factory=CartsConfig)
    floor: FloorConfig = field(default_factory=FloorConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    peak: PeakConfig = field(default_factory=PeakConfig)
    device_entries: tuple[DeviceConfig, ...] = ()
    #: where each value came from: "box.id" -> "file:3", "api.port" -> "env:PICKEDGE__API__PORT"
    sources: Mapping[str, str] = field(default_factory=dict)
    #: secrets read from their files, by key path ("box.secret_file")
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    path: Path | None = None

    @property
    def devices(self) -> tuple[DeviceSpec, ...]:
        """The enabled devices as the device layer sees them."""
        return tuple(
            DeviceSpec(
                id=d.id,
                driver=d.driver,
                role=DeviceRole(d.role),
                url=d.url or None,
                topic=d.topic or None,
                bound_to=d.bound_to or None,
                options=dict(d.options),
            )
            for d in self.device_entries
            if d.enabled
        )

    def box_secret(self) -> Secret | None:
        return self.secrets.get("box.secret_file")

    def mqtt_settings(self) -> MqttSettings:
        password = self.secrets.get("mqtt.password_file")
        m = self.mqtt
        return MqttSettings(
            host=m.host,
            port=m.port,
            username=m.username or None,
            password=password.reveal() if password else None,
            client_id_prefix=m.client_id_prefix,
            tls=m.tls or bool(m.tls_ca_file),
            tls_ca_file=self.file_path("mqtt.tls_ca_file"),
            tls_cert_file=self.file_path("mqtt.tls_cert_file"),
            tls_key_file=self.file_path("mqtt.tls_key_file"),
        )

    def file_path(self, key: str) -> str | None:
        """The file a ``*_file`` key names, as a path (relative ones against the
        config file's directory, ``credential:NAME`` in ``$CREDENTIALS_DIRECTORY``);
        ``None`` when the key is empty."""
        section, _, name = key.partition(".")
        value = getattr(getattr(self, section), name)
        return str(secret_path(value, self.path, os.environ)) if value else None

    def layout_dict(self) -> dict[str, Any]:
        """The ``[layout]`` table as a routing-v1 layout object."""
        return dataclasses.asdict(self.layout)

    def store_path(self) -> Path:
        return resolve_relative(self.store.path, self.path)


SECTIONS: dict[str, type[Any]] = {
    "box": BoxConfig,
    "cloud": CloudConfig,
    "store": StoreConfig,
    "api": ApiConfig,
    "mqtt": MqttConfig,
    "logging": LoggingConfig,
    "layout": LayoutConfig,
    "shipping": ShippingConfig,
    "carts": CartsConfig,
    "floor": FloorConfig,
    "retention": RetentionConfig,
    "alerts": AlertsConfig,
    "peak": PeakConfig,
}
SECRET_KEYS = ("box.secret_file", "mqtt.password_file", "api.metrics_token_file")
#: private keys: held to the same permissions as secrets, but read by the TLS
#: library from their path (issue 14)
PRIVATE_KEY_KEYS = ("api.tls_key_file", "mqtt.tls_key_file")


def resolve_relative(value: str, config_path: Path | None) -> Path:
    """Relative paths in a config file are relative to the file's directory."""
    p = Path(value)
    with contextlib.suppress(RuntimeError):  # "~nobody/x": left as written, then not found
        p = p.expanduser()
    if not p.is_absolute() and config_path is not None:
        p = config_path.parent / p
    return p


# --------------------------------------------------------------------------- line index


class _LineIndex:
    """Finds the line of a key in TOML text, for error messages.

    tomllib gives no positions, so this tracks table headers and ``key =`` lines.
    It understands what configs use (tables, arrays of tables, dotted-free keys,
    inline tables on one line) and answers None where it cannot tell.
    """

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            m = self._header.match(line)
            if m:
                name = m.group(2)
                if m.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}[{index}]"
                else:
                    table = self._resolve(name, counts)
                self.lines.setdefault(table, number)
                continue
            k = self._key.match(line)
            if k:
                key = k.group(1).strip('"')
                self.lines.setdefault(f"{table}.{key}" if table else key, number)

    @staticmethod
    def _resolve(name: str, counts: dict[str, int]) -> str:
        # [devices.options] after [[devices]] belongs to the latest device entry
        head, _, rest = name.partition(".")
        if head in counts and rest:
            return f"{head}[{counts[head] - 1}].{rest}"
        return name

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return None


# --------------------------------------------------------------------------- validation


class _Collector:
    def __init__(self, file_label: str, index: _LineIndex | None) -> None:
        self.problems: list[str] = []
        self.sources: dict[str, str] = {}
        self.file_label = file_label
        self.index = index

    def where(self, path: str, origin: str) -> str:
        if origin.startswith("env:"):
            return f"{origin[4:]} (environment)"
        line = self.index.line(path) if self.index else None
        return f"{self.file_label}:{line}" if line else self.file_label

    def problem(self, path: str, origin: str, message: str) -> None:
        self.problems.append(f"{self.where(path, origin)}: {path}: {message}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """Check ``value`` against a field type; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double
            return False, value
        return math.isfinite(number), number  # nan and inf are no setting
    if tp is str:
        return isinstance(value, str), value
    if origin is dict:
        return isinstance(value, dict), value
    raise TypeError(f"unsupported config type {tp!r}")  # a programming error


def _env_value(tp: Any, raw: str) -> Any:
    """Parse an environment string the way the field's type reads."""
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    for parse in (int,) if tp is int else (float,) if tp is float else ():
        try:
            return parse(raw)
        except ValueError:
            return raw
    return raw


def _build(
    cls: type[Any],
    data: Mapping[str, Any],
    prefix: str,
    origin_of: dict[str, str],
    out: _Collector,
) -> Any:
    """Validate ``data`` against the dataclass ``cls``; report problems into ``out``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        origin = origin_of.get(path, "file")
        if key not in fields:
            guess = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            out.problem(path, origin, f"unknown key{hint}")
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                out.problem(path, origin, "must be a table")
                continue
            values[key] = _build(tp, value, path, origin_of, out)  # type: ignore[arg-type]
            continue
        ok, coerced = _coerce(tp, value)
        if not ok:
            out.problem(path, origin, f"must be {_type_name(tp)}, not {value!r}")
            continue
        meta = fields[key].metadata
        if "min" in meta and coerced < meta["min"]:
            out.problem(path, origin, f"must be at least {meta['min']}, not {coerced!r}")
            continue
        if "max" in meta and coerced > meta["max"]:
            out.problem(path, origin, f"must be at most {meta['max']}, not {coerced!r}")
            continue
        if meta.get("pattern"):
            try:
                re.compile(coerced)
            except re.error as exc:
                out.problem(path, origin, f"is not a regular expression: {exc}")
                continue
        values[key] = coerced
        out.sources[path] = origin
    return cls(**values)


def _apply_env(
    raw: dict[str, Any], env: Mapping[str, str], origin_of: dict[str, str], out: _Collector
) -> None:
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        path = ".".join(parts)
        origin = f"env:{name}"
        cls = SECTIONS.get(parts[0])
        if parts[0] == "devices":
            out.problem(
                path, origin, "[[devices]] entries are set in the file, not the environment"
            )
            continue
        if cls is None:
            guess = difflib.get_close_matches(parts[0], list(SECTIONS), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            out.problem(path, origin, f"unknown section{hint}")
            continue
        # walk nested dataclasses (layout.depot.x) to find the field type
        target = raw.setdefault(parts[0], {})
        tp: Any = cls
        for part in parts[1:-1]:
            hints = typing.get_type_hints(tp)
            if part not in hints or not dataclasses.is_dataclass(hints[part]):
                tp = None
                break
            tp = hints[part]
            target = target.setdefault(part, {})
        hints = typing.get_type_hints(tp) if tp is not None else {}
        leaf = parts[-1]
        if len(parts) < 2 or leaf not in hints:
            guess = difflib.get_close_matches(leaf, list(hints), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            out.problem(path, origin, f"unknown key{hint}")
            continue
        target[leaf] = _env_value(hints[leaf], text)
        origin_of[path] = origin


#: where systemd puts the service's credentials (LoadCredential=), already
#: readable by the service alone
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def secret_path(path_value: str, config_path: Path | None, env: Mapping[str, str]) -> Path:
    """Where a ``*_file`` secret is read from: ``credential:NAME`` names a
    systemd credential (``$CREDENTIALS_DIRECTORY/NAME``); anything else is a
    path, relative to the config file's directory."""
    if path_value.startswith("credential:"):
        name = path_value.removeprefix("credential:")
        base = env.get(CREDENTIALS_ENV, "")
        if not base or not name or "/" in name:
            return Path("/nonexistent-credential") / (name or "?")
        return Path(base) / name
    return resolve_relative(path_value, config_path)


def _exposed(path: Path) -> str | None:
    """Why a secret file is not private to this user (None when it is): group
    or others may read it, or another user owns it. Credentials systemd hands
    the service are private by construction and not checked."""
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None  # reading it reports the problem
    if st.st_mode & 0o077:
        return f"is readable by others (mode {st.st_mode & 0o777:04o}): chmod 600 it"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to this service's user ({os.geteuid()})"
    return None


def _read_secret(
    path_value: str,
    key: str,
    config_path: Path | None,
    out: _Collector,
    env: Mapping[str, str] | None = None,
) -> Secret:
    origin = out.sources.get(key, "file")
    env = os.environ if env is None else env
    path = secret_path(path_value, config_path, env)
    credential = path_value.startswith("credential:")
    problem = None if credential else _exposed(path)
    if problem is not None:
        out.problem(key, origin, f"secret file {path} {problem}")
        return Secret("", str(path))
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        out.problem(key, origin, f"secret file {path} does not exist (create it, mode 0600)")
    except PermissionError:
        out.problem(key, origin, f"secret file {path} is not readable by this user")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the path
        out.problem(key, origin, f"secret file {str(path)[:200]} cannot be read: {exc}")
    else:
        if not text:
            out.problem(key, origin, f"secret file {path} is empty")
        return Secret(text, str(path))
    return Secret("", str(path))


def _check_tls(
    cfg: Config, config_path: Path | None, out: _Collector, env: Mapping[str, str]
) -> None:
    """TLS files: a key private like a secret, the pairs complete and loadable
    (``check-config`` reports what ``run`` would fail on)."""

    def raw(key: str) -> str:
        section, _, name = key.partition(".")
        return str(getattr(getattr(cfg, section), name))

    def where(key: str) -> str | None:
        value = raw(key)
        return str(secret_path(value, config_path, env)) if value else None

    for key in PRIVATE_KEY_KEYS:
        value = where(key)
        if value is None or raw(key).startswith("credential:"):
            continue  # systemd's credentials are private by construction
        problem = _exposed(Path(value))
        if problem is not None:
            out.problem(key, out.sources.get(key, "file"), f"key file {value} {problem}")
            return
    cert_path, key_path = where("api.tls_cert_file"), where("api.tls_key_file")
    if bool(cert_path) != bool(key_path):
        out.problem("api.tls_key_file", "file", "api.tls_cert_file and tls_key_file go together")
    elif cert_path and key_path:
        try:
            server_context(cert_path, key_path)
        except TlsConfigError as exc:
            out.problem("api.tls_cert_file", out.sources.get("api.tls_cert_file", "file"), str(exc))
    if cfg.cloud.ca_file:
        if not cfg.cloud.url.startswith("https://"):
            out.problem("cloud.ca_file", "file", "is set but cloud.url is not https://")
        try:
            client_context(where("cloud.ca_file"))
        except TlsConfigError as exc:
            out.problem("cloud.ca_file", out.sources.get("cloud.ca_file", "file"), str(exc))
    m = cfg.mqtt
    if m.tls or m.tls_ca_file or m.tls_cert_file or m.tls_key_file:
        if (m.tls_cert_file or m.tls_key_file) and not (m.tls or m.tls_ca_file):
            out.problem("mqtt.tls", "file", "a client certificate needs mqtt.tls = true")
        try:
            client_context(
                where("mqtt.tls_ca_file"),
                cert_file=where("mqtt.tls_cert_file"),
                key_file=where("mqtt.tls_key_file"),
            )
        except TlsConfigError as exc:
            out.problem("mqtt.tls_ca_file", out.sources.get("mqtt.tls_ca_file", "file"), str(exc))


def _check_devices(entries: tuple[DeviceConfig, ...], out: _Collector) -> None:
    seen: set[str] = set()
    for i, d in enumerate(entries):
        path = f"devices[{i}]"
        if not d.id:
            out.problem(f"{path}.id", "file", "is required")
        elif d.id in seen:
            out.problem(f"{path}.id", "file", f"duplicate device id {d.id!r}")
        seen.add(d.id)
        if not d.driver:
            out.problem(f"{path}.driver", "file", "is required")
            continue
        try:
            cls = driver_class(d.driver)
        except DeviceConfigError as exc:
            guess = difflib.get_close_matches(d.driver, list(DRIVERS), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            out.problem(f"{path}.driver", "file", f"{exc}{hint}")
            continue
        except ImportError as exc:
            out.problem(f"{path}.driver", "file", f"driver {d.driver!r} cannot load: {exc}")
            continue
        from devices.registry import MQTT_DRIVERS

        if d.driver in MQTT_DRIVERS and not d.topic:
            out.problem(f"{path}.topic", "file", f"is required for driver {d.driver!r}")
        if d.driver not in MQTT_DRIVERS and not d.url:
            out.problem(f"{path}.url", "file", f"is required for driver {d.driver!r}")
        try:
            cls.check_options(d.options)
        except DeviceConfigError as exc:
            out.problem(f"{path}.options", "file", str(exc))


def _check_layout(layout: LayoutConfig, out: _Collector) -> None:
    try:
        from edge.routing import route
    except ImportError:  # the routing engine is part of the package; guard for partial builds
        return
    try:
        route({"layout": dataclasses.asdict(layout), "picks": []})
    except ValueError as exc:
        out.problem("layout", out.sources.get("layout.kind", "file"), str(exc))


def load_config(
    path: Path | None, env: Mapping[str, str] | None = None, *, read_secrets: bool = True
) -> Config:
    """Read, override and validate a configuration; raise ``ConfigError`` listing
    every problem. ``path`` None means defaults + environment only."""
    environ = os.environ if env is None else env
    text = ""
    label = "<defaults>"
    if path is not None:
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such configuration file"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
    out = _Collector(label, _LineIndex(text) if text else None)
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: not valid TOML: {exc}"]) from None

    origin_of: dict[str, str] = {}
    _apply_env(raw, environ, origin_of, out)
    for key in raw:
        origin_of.setdefault(key, "file")

    sections: dict[str, Any] = {}
    device_entries: list[DeviceConfig] = []
    for key, value in raw.items():
        if key == "devices":
            if not isinstance(value, list):
                out.problem("devices", "file", "must be an array of tables ([[devices]])")
                continue
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    out.problem(f"devices[{i}]", "file", "must be a table")
                    continue
                device_entries.append(_build(DeviceConfig, entry, f"devices[{i}]", {}, out))
            continue
        cls = SECTIONS.get(key)
        if cls is None:
            guess = difflib.get_close_matches(key, [*SECTIONS, "devices"], n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            out.problem(key, origin_of.get(key, "file"), f"unknown section{hint}")
            continue
        if not isinstance(value, dict):
            out.problem(key, "file", "must be a table")
            continue
        sections[key] = _build(cls, value, key, origin_of, out)

    # Sources of file values: mark them with their line.
    for p, origin in list(out.sources.items()):
        if origin == "file":
            line = out.index.line(p) if out.index else None
            out.sources[p] = f"file:{line}" if line else "file"

    cfg = Config(**sections, device_entries=tuple(device_entries), path=path)

    if not cfg.box.id:
        out.problem("box.id", "file", "is required (this box's id in the fleet)")
    elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}", cfg.box.id):
        out.problem("box.id", "file", "letters, digits, '.', '_' and '-' only, at most 64")
    if cfg.cloud.url and not re.match(r"^https?://[^\s/]+", cfg.cloud.url):
        out.problem("cloud.url", "file", f"must be an http(s) URL, not {cfg.cloud.url!r}")
    if cfg.cloud.url and not cfg.box.secret_file:
        out.problem("box.secret_file", "file", "is required when cloud.url is set")
    if cfg.store.warn_backlog >= cfg.store.max_backlog:
        out.problem("store.warn_backlog", "file", "must be below store.max_backlog")
    if not cfg.store.path:
        out.problem("store.path", "file", "is required")
    _check_devices(cfg.device_entries, out)
    _check_layout(cfg.layout, out)
    for sku, low in cfg.alerts.low_stock_skus.items():
        if isinstance(low, bool) or not isinstance(low, int) or low < 0:
            out.problem(
                f"alerts.low_stock_skus.{sku}", "file", f"must be a whole number ≥ 0, not {low!r}"
            )

    secrets: dict[str, Secret] = {}
    if read_secrets:
        for key in SECRET_KEYS:
            section, _, name = key.partition(".")
            value = getattr(getattr(cfg, section), name)
            if value:
                secrets[key] = _read_secret(value, key, path, out, environ)
        _check_tls(cfg, path, out, environ)
    if out.problems:
        raise ConfigError(out.problems)
    return dataclasses.replace(cfg, sources=dict(out.sources), secrets=secrets)


def effective_config(cfg: Config) -> list[tuple[str, Any, str]]:
    """Every key with its value and where it came from, for ``check-config``.
    Secret values are never included, only the files they come from."""
    rows: list[tuple[str, Any, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            path = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(value):
                walk(value, path)
            else:
                rows.append((path, value, cfg.sources.get(path, "default")))

    for name in SECTIONS:
        walk(getattr(cfg, name), name)
    for i, device in enumerate(cfg.device_entries):
        for f in dataclasses.fields(device):
            path = f"devices[{i}].{f.name}"
            rows.append((path, getattr(device, f.name), cfg.sources.get(path, "default")))
    return rows
