"""Named crash points for tests: compiled in, inert unless armed.

Like FoundationDB's *buggify*, the product carries a few calls
``crash_point("name")`` at the instants where a crash is hardest to survive,
and a test arms them from outside. Unarmed (the default, and always in
production), a call is one dictionary lookup and does nothing.

Arming is by the environment variable ``PICKEDGE_CRASH_POINTS``, read once at
import: a comma-separated list of ``name:probability``, for example::

    PICKEDGE_CRASH_POINTS="after_commit_before_answer:0.05,after_send_before_ack:0.1"

Each time an armed point is reached, the process kills itself with ``SIGKILL``
with that probability: no ``finally``, no flush, no WAL checkpoint, exactly what
a power cut or the OOM killer does. Before dying it writes one line
``crash point NAME: SIGKILL`` straight to file descriptor 2, so a test reading
the daemon's stderr can tell which point fired.

The points (``KNOWN``):

- ``after_commit_before_answer``: ``POST /api/v1/scan``, after the scan's
  transaction committed and before the HTTP answer is built. The PDA hears
  nothing and retries the same ``scan_id``; it must get the stored answer and
  the unit must be counted once.
- ``after_send_before_ack``: the uploader, after a batch was sent and answered
  and before the ack is stored. The restarted box sends the batch again; the
  cloud must take it as a duplicate.
- ``during_epoch_move``: the uploader's epoch change, after the switch or a
  chunk of the move committed and before the next chunk. The restarted box
  must finish the move before it sends, and lose or double nothing.
- ``after_pack_commit_before_ack``: a pack station's fixed scanner, after the
  scan's transaction (and its label print, if any) committed and before the
  MQTT message is acknowledged. The broker redelivers the message; the
  restarted box must find its key and pack nothing twice.
- ``after_close_before_print``: a pack scan that made a print job (the CLOSE
  that packed the order, or a REPRINT), after its commit and before the job
  is sent. The job stays queued; the SSCCs it carries are never handed out
  again, and a REPRINT at the station prints them.

A malformed value or an unknown name raises :class:`ValueError` at import, so a
test never runs with a crash point it believes armed but is not.
"""

from __future__ import annotations

import os
import random
import signal

ENV = "PICKEDGE_CRASH_POINTS"

KNOWN = frozenset(
    {
        "after_commit_before_answer",
        "after_send_before_ack",
        "during_epoch_move",
        "after_pack_commit_before_ack",
        "after_close_before_print",
    }
)


def parse(spec: str) -> dict[str, float]:
    """``"a:0.1,b:0.5"`` → ``{"a": 0.1, "b": 0.5}``; ValueError when malformed."""
    armed: dict[str, float] = {}
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, value = part.partition(":")
        name = name.strip()
        if not sep:
            raise ValueError(f"{ENV}: {part!r} is not NAME:PROBABILITY")
        if name not in KNOWN:
            raise ValueError(f"{ENV}: unknown crash point {name!r}; known: {sorted(KNOWN)}")
        try:
            probability = float(value)
        except ValueError:
            raise ValueError(f"{ENV}: {part!r}: the probability is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{ENV}: {part!r}: the probability must be within 0..1")
        armed[name] = probability
    return armed


#: the armed points and their probabilities (empty: every point is inert)
ARMED: dict[str, float] = parse(os.environ.get(ENV, ""))

_rng = random.Random()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL here, when ``name`` is armed (by chance)."""
    probability = ARMED.get(name)
    if probability is None:
        return
    if probability >= 1.0 or _rng.random() < probability:
        os.write(2, f"crash point {name}: SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ARMED", "ENV", "KNOWN", "crash_point", "parse"]
