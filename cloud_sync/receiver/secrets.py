"""Per-box sync secrets for the receiver, rotatable without a restart.

A source answers :meth:`SecretSource.signers` with the signers a box's request
may verify against: the current secret first, then any older one still inside
its overlap. The service signs its answer with the signer that verified the
request, so a box still on the old secret can verify the answer it gets.

- :class:`DirectorySecrets`: ``DIR/<box>`` holds the box's secret (its first
  line). A file is re-read when its size, mtime, inode or mode changes
  (checked at most every ``recheck_s`` per box); when the secret changed, the
  previous one stays accepted for ``overlap_s``. Files others can read are
  refused (logged once), as the box refuses its own, until they are chmod 600.
  Removing a box's file revokes it at once: the overlap is for a secret that
  changed, not for one taken away.
- :class:`TableSecrets`: rows of ``box_secrets`` in the receiver's database;
  :meth:`TableSecrets.rotate` adds a secret and retires the current one at the
  end of the overlap, so every receiver process sees the same overlap.

Box ids are what a file name can safely be: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``.
Neither source remembers a box id it has no secret for (anyone may send any
id). Secrets never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cloud_sync.receiver.storage import Database
from cloud_sync.signing import Signer

log = logging.getLogger(__name__)

BOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def valid_box_id(box: str | None) -> bool:
    return box is not None and BOX_ID.fullmatch(box) is not None


class SecretSource(Protocol):
    def signers(self, box: str) -> list[Signer]:
        """The box's accepted signers, current first; [] for an unknown box."""


@dataclass
class _Entry:
    #: (inode, size, mtime, mode) of the file; None: no file
    key: tuple[int, int, int, int] | None
    secret: str | None
    checked: float
    #: (secret, accepted until) of earlier secrets inside their overlap
    previous: list[tuple[str, float]]


class DirectorySecrets:
    """``DIR/<box>`` files, re-read on change, with an overlap for the old one."""

    def __init__(
        self,
        path: Path | str,
        *,
        overlap_s: float = 3600.0,
        recheck_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"secrets directory {self.path} does not exist")
        self.overlap_s = overlap_s
        self.recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._refused: set[str] = set()

    def __repr__(self) -> str:
        return f"DirectorySecrets({str(self.path)!r})"

    def signers(self, box: str) -> list[Signer]:
        if not valid_box_id(box):
            return []
        now = self._clock()
        with self._lock:
            entry = self._entries.get(box)
            if entry is None or now - entry.checked >= self.recheck_s:
                entry = self._reload(box, entry, now)
            secrets = [entry.secret] if entry.secret else []
            secrets += [s for s, until in entry.previous if until > now and s not in secrets]
        return [Signer(s) for s in secrets]

    def _reload(self, box: str, entry: _Entry | None, now: float) -> _Entry:
        file = self.path / box
        try:
            st = file.stat()
        except FileNotFoundError:
            key, secret = None, None
        else:
            # the mode too: a chmod 600 of a refused file must be seen
            key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
            if entry is not None and entry.key == key:
                entry.checked = now
                return entry
            secret = self._read(box, file, st)
        previous: list[tuple[str, float]] = []
        if secret is None:
            # removed (or refused): the box is refused at once, overlap or not
            if entry is not None and (entry.secret or entry.previous):
                log.warning("secret of box %s removed or refused: the box is refused", box)
        elif entry is not None:
            previous = [(s, u) for s, u in entry.previous if u > now]
            if entry.secret and entry.secret != secret:
                previous.append((entry.secret, now + self.overlap_s))
                log.info("sync secret of box %s changed; the old one is accepted for %ss",
                         box, self.overlap_s)  # fmt: skip
        fresh = _Entry(key, secret, now, previous)
        if key is None:
            self._entries.pop(box, None)  # no file: nothing to remember
        else:
            self._entries[box] = fresh
        return fresh

    def _read(self, box: str, file: Path, st: os.stat_result) -> str | None:
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            if box not in self._refused:
                self._refused.add(box)
                log.error("secret file of box %s is readable by others: refused (chmod 600)", box)
            return None
        self._refused.discard(box)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("secret file of box %s cannot be read: %s", box, type(exc).__name__)
            return None
        first = text.splitlines()[0].strip() if text.strip() else ""
        return first or None


class TableSecrets:
    """``box_secrets`` rows; cached for ``cache_s`` per box in each process."""

    def __init__(
        self,
        db: Database,
        *,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def __repr__(self) -> str:
        return "TableSecrets(box_secrets)"

    def signers(self, box: str) -> list[Signer]:
        if not valid_box_id(box):
            return []
        now = self._clock()
        with self._lock:
            hit = self._cache.get(box)
        if hit is None or now - hit[0] >= self.cache_s:
            now_ms = int(now * 1000)
            with self.db.transaction() as tx:
                rows = tx.all(
                    "SELECT secret FROM box_secrets WHERE box = ?"
                    " AND (retire_ms IS NULL OR retire_ms > ?) ORDER BY created_ms DESC",
                    (box, now_ms),
                )
            hit = (now, [str(s) for (s,) in rows])
            with self._lock:
                if hit[1]:
                    self._cache[box] = hit
                else:  # an unknown (or retired) box: nothing to remember
                    self._cache.pop(box, None)
        return [Signer(s) for s in hit[1]]

    def rotate(self, box: str, secret: str, *, overlap_s: float = 3600.0) -> None:
        """Make ``secret`` the box's current one; the ones in use now are
        accepted for ``overlap_s`` more (by every receiver process)."""
        if not valid_box_id(box):
            raise ValueError("box ids are [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
        if not secret:
            raise ValueError("the secret is empty")
        now_ms = int(self._clock() * 1000)
        with self.db.transaction() as tx:
            last = tx.one("SELECT max(created_ms) FROM box_secrets WHERE box = ?", (box,))
            created = max(now_ms, int(last[0]) + 1 if last and last[0] is not None else 0)
            tx.execute(
                "UPDATE box_secrets SET retire_ms = ? WHERE box = ?"
                " AND (retire_ms IS NULL OR retire_ms > ?)",
                (now_ms + int(overlap_s * 1000), box, now_ms + int(overlap_s * 1000)),
            )
            tx.execute(
                "INSERT INTO box_secrets (box, created_ms, secret) VALUES (?, ?, ?)",
                (box, created, secret),
            )
        with self._lock:
            self._cache.pop(box, None)


__all__ = ["BOX_ID", "DirectorySecrets", "SecretSource", "TableSecrets", "valid_box_id"]
