"""A power-cut filesystem for tests: FUSE over a backing directory, where
nothing is durable until it is synced, and a command cuts the power.

Like LazyFS (the FUSE filesystem that found data-loss bugs in etcd, PostgreSQL
and Redis) and SQLite's own crash-test VFS, it keeps every write in memory
until the program makes it durable, and on command throws away what was not:

- **data** (``write``, ``truncate``, ``O_TRUNC``) lives in a per-file page
  overlay (4 KiB pages over the backing file) until that file is ``fsync``ed
  or ``fdatasync``ed; reads see the overlay, so the running program sees
  exactly what it wrote;
- **names** (``create``, ``mkdir``, ``rename``, ``unlink``, ``rmdir``) live in
  an in-memory tree until their directory is ``fsync``ed (FUSE's
  ``fsyncdir``): only then does the backing directory take the new names. A
  file synced before its name is gets its durable content in a hidden orphan
  area (like an inode no directory points to yet), which a cut deletes, as
  ``fsck`` would;
- **cut** (a control command): what was not synced is gone, every later
  operation fails (``EIO``, then, as the process ends and its ``/dev/fuse``
  closes, the aborted connection's ``ENOTCONN``/``ECONNABORTED``: a process
  still holding a file never holds the mount up). The backing directory is
  then what a disk holds after the power came back; the test unmounts and
  mounts again (a new process), which also empties the kernel's page cache
  of the mount.

Mode ``torn`` is harsher, what real disks and controllers do: at the cut an
arbitrary (seeded) half of each file's unsynced pages and of the unsynced
directories reach the disk anyway, the latest unsynced page of each file is
*torn* (only its first 1–7 of 8 sectors of 512 bytes are written), and a
pending truncate lands or not. Writes never damage bytes outside the range
they wrote (SQLite's "powersafe overwrite", which the unix VFS assumes).

What is not modelled: metadata other than names and sizes (mode, times,
owner) is applied to the backing file at once; hard and symbolic links are
refused; a directory's durable entry follows its latest name only (a file
renamed from one directory into another and synced in the new one leaves the
old one's name too). The backing directory itself is not fsynced on the real
disk: the model is what this process keeps, not the machine's disk.

Locks: this filesystem implements no ``lock``/``flock``, so the kernel keeps
POSIX and BSD locks locally for the mount (FUSE's default), which is what
SQLite needs between processes on one box. SQLite's ``-shm`` file is mapped
``MAP_SHARED``; files are never opened ``direct_io``, so the kernel's page
cache serves the mapping and writes dirty pages back through ``write`` (never
synced, so a cut loses them: correct, the ``-shm`` is rebuilt from the WAL).

Run it as ``python -m tests.support.powercut_fs MOUNT BACKING --control
SOCKET``; :class:`PowercutFs` does, and always unmounts (``fusermount3 -u
-z``) and reaps it. The control socket takes one JSON line and answers one:
``{"cmd": "stats"}``, ``{"cmd": "sync"}`` (everything, as a clean unmount
does), ``{"cmd": "cut", "mode": "default" | "torn", "seed": N}``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = 4096
SECTOR = 512
ORPHANS = ".powercut-orphans"  # in the backing root, hidden from the mount
MODES = ("default", "torn")


class FsError(OSError):
    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


@dataclass(eq=False)
class Node:
    """A file or directory as the running program sees it."""

    ino: int
    is_dir: bool
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    backing: str | None = None  # where its durable content is (None: nowhere yet)
    # directories
    children: dict[str, Node] = field(default_factory=dict)
    ns_dirty: bool = False  # names changed since the last fsyncdir
    # files
    size: int = 0  # as the program sees it
    dsize: int = 0  # of the durable content
    floor: int = 0  # durable bytes at or past this were truncated away (unsynced)
    pages: dict[int, bytearray] = field(default_factory=dict)  # unsynced pages
    written: dict[int, int] = field(default_factory=dict)  # page -> write counter
    fd: int | None = None  # the backing file, open read-write
    linked: bool = True
    opens: int = 0

    def alive(self) -> bool:
        return self.linked or self.opens > 0


class PowercutOps:
    """The FUSE operations (mfusepy's path API). One lock: the loop is
    single-threaded, the lock keeps the control thread out of an operation."""

    use_ns = True

    def __init__(self, backing: Path) -> None:
        self.root_path = str(backing.resolve())
        self.orphans = os.path.join(self.root_path, ORPHANS)
        shutil.rmtree(self.orphans, ignore_errors=True)  # fsck: unnamed inodes go
        os.mkdir(self.orphans)
        self.mutex = threading.RLock()
        self.frozen = False
        self.next_ino = 1
        self.counter = 0
        self.fhs: dict[int, Node] = {}
        self.next_fh = 1
        self.owner: dict[str, Node] = {}  # backing path -> the node it holds
        self.stats: dict[str, int] = {
            "writes": 0,
            "fsyncs": 0,
            "fsyncdirs": 0,
            "synced_pages": 0,
            "cuts": 0,
            "lost_pages": 0,
            "lost_dirs": 0,
            "kept_pages": 0,
            "torn_pages": 0,
            "kept_dirs": 0,
            "kept_truncates": 0,
        }
        self.root = self._scan(self.root_path)

    # ------------------------------------------------------------------ model

    def _node(self, st: os.stat_result | None, *, is_dir: bool, mode: int) -> Node:
        self.next_ino += 1
        if st is None:
            return Node(self.next_ino, is_dir, mode, os.getuid(), os.getgid(), time.time_ns())
        return Node(self.next_ino, is_dir, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)

    def _scan(self, path: str) -> Node:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            node = self._node(st, is_dir=True, mode=st.st_mode)
            for name in sorted(os.listdir(path)):
                if path == self.root_path and name == ORPHANS:
                    continue
                node.children[name] = self._scan(os.path.join(path, name))
        else:
            node = self._node(st, is_dir=False, mode=st.st_mode)
            node.size = node.dsize = node.floor = st.st_size
        node.backing = path
        self.owner[path] = node
        return node

    def _lookup(self, path: str) -> Node:
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise FsError(errno.ENOTDIR)
            found = node.children.get(part)
            if found is None:
                raise FsError(errno.ENOENT)
            node = found
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._lookup(head or "/")
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        return parent, name

    def _file(self, path: str | None, fh: int | None) -> Node:
        node = self.fhs.get(fh) if fh else None
        if node is None:
            if path is None:
                raise FsError(errno.EBADF)
            node = self._lookup(path)
        return node

    def _fd(self, node: Node) -> int | None:
        if node.fd is None and node.backing is not None:
            node.fd = os.open(node.backing, os.O_RDWR)
        return node.fd

    def _durable_page(self, node: Node, page: int) -> bytearray:
        start = page * PAGE
        end = min(start + PAGE, node.dsize, node.floor)
        buf = bytearray(PAGE)
        fd = self._fd(node)
        if fd is not None and end > start:
            data = os.pread(fd, end - start, start)
            buf[: len(data)] = data
        return buf

    def _page(self, node: Node, page: int) -> bytearray:
        buf = node.pages.get(page)
        if buf is None:
            buf = node.pages[page] = self._durable_page(node, page)
        return buf

    def _check(self) -> None:
        if self.frozen:
            raise FsError(errno.EIO)

    def _move_backing(self, node: Node, target: str) -> None:
        old = node.backing
        assert old is not None
        os.rename(old, target)
        for path in [p for p in self.owner if p == old or p.startswith(old + "/")]:
            moved = self.owner.pop(path)
            moved.backing = target + path[len(old) :]
            self.owner[moved.backing] = moved

    def _drop_backing(self, node: Node) -> None:
        """The durable content of a dead node goes (and all under it)."""
        old = node.backing
        if old is None:
            return
        for path in [p for p in self.owner if p == old or p.startswith(old + "/")]:
            gone = self.owner.pop(path)
            if gone.fd is not None:
                os.close(gone.fd)
                gone.fd = None
            gone.backing = None
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old)
        else:
            os.unlink(old)

    def _sync_file(self, node: Node) -> None:
        if node.is_dir:
            return
        if node.backing is None:
            node.backing = os.path.join(self.orphans, f"i{node.ino}")
            os.close(os.open(node.backing, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            self.owner[node.backing] = node
        fd = self._fd(node)
        assert fd is not None
        if node.floor < node.dsize:
            os.ftruncate(fd, min(node.floor, node.size))
        for page, buf in sorted(node.pages.items()):
            start = page * PAGE
            if start < node.size:
                os.pwrite(fd, bytes(buf[: min(PAGE, node.size - start)]), start)
        os.ftruncate(fd, node.size)
        self.stats["synced_pages"] += len(node.pages)
        node.pages.clear()
        node.written.clear()
        node.dsize = node.floor = node.size

    def _sync_dir(self, d: Node) -> None:
        """The backing directory takes the names ``d`` has now."""
        if d.backing is None:
            d.backing = os.path.join(self.orphans, f"d{d.ino}")
            os.mkdir(d.backing)
            self.owner[d.backing] = d
        base = d.backing
        for name in sorted(os.listdir(base)):
            if base == self.root_path and name == ORPHANS:
                continue
            path = os.path.join(base, name)
            held = self.owner.get(path)
            if held is not None and d.children.get(name) is held:
                continue
            if held is not None and held.alive():
                self._move_backing(held, os.path.join(self.orphans, f"x{held.ino}"))
            elif held is not None:
                self._drop_backing(held)
            else:
                (shutil.rmtree if os.path.isdir(path) else os.unlink)(path)
        for name, child in d.children.items():
            target = os.path.join(base, name)
            if child.backing == target:
                continue
            if child.backing is not None:
                self._move_backing(child, target)
            else:
                if child.is_dir:
                    os.mkdir(target, child.mode & 0o7777)
                else:
                    os.close(os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                    os.chmod(target, child.mode & 0o7777)
                child.backing = target
                self.owner[target] = child
        d.ns_dirty = False

    def _nodes(self) -> list[Node]:
        out: list[Node] = []
        seen: set[int] = set()

        def walk(n: Node) -> None:
            if n.ino in seen:
                return
            seen.add(n.ino)
            out.append(n)
            for c in n.children.values():
                walk(c)

        walk(self.root)
        for n in [*self.fhs.values(), *self.owner.values()]:
            walk(n)
        return out

    # ---------------------------------------------------------------- control

    def sync_all(self) -> dict[str, int]:
        with self.mutex:
            nodes = self._nodes()
            for n in nodes:
                if not n.is_dir and n.alive():
                    self._sync_file(n)
            for n in nodes:
                if n.is_dir and n.alive():
                    self._sync_dir(n)
            return dict(self.stats)

    def cut(self, mode: str, seed: int) -> dict[str, int]:
        """Power off: what was not synced is lost (``torn``: half of it lands,
        torn). Every later operation fails with EIO."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: {MODES}")
        with self.mutex:
            self.frozen = True
            rng = random.Random(seed)
            nodes = self._nodes()
            self.stats["cuts"] += 1
            for n in nodes:
                if n.is_dir and n.ns_dirty:
                    if mode == "torn" and n.alive() and rng.random() < 0.5:
                        self._sync_dir(n)
                        self.stats["kept_dirs"] += 1
                    else:
                        self.stats["lost_dirs"] += 1
            for n in nodes:
                if n.is_dir or not (n.pages or n.floor < n.dsize):
                    continue
                if mode == "torn" and n.backing is not None:
                    self._land_some(n, rng)
                else:
                    self.stats["lost_pages"] += len(n.pages)
            for n in nodes:
                if n.fd is not None:
                    os.close(n.fd)
                    n.fd = None
            shutil.rmtree(self.orphans, ignore_errors=True)
            return dict(self.stats)

    def _land_some(self, n: Node, rng: random.Random) -> None:
        fd = self._fd(n)
        assert fd is not None
        if n.floor < n.dsize and rng.random() < 0.5:
            os.ftruncate(fd, n.floor)
            self.stats["kept_truncates"] += 1
        last = max(n.written, key=lambda p: n.written[p]) if n.written else None
        for page, buf in sorted(n.pages.items()):
            start = page * PAGE
            length = min(PAGE, n.size - start)
            if length <= 0:
                continue
            if page == last:
                length = min(length, SECTOR * rng.randint(1, PAGE // SECTOR - 1))
                self.stats["torn_pages"] += 1
            elif rng.random() >= 0.5:
                self.stats["lost_pages"] += 1
                continue
            else:
                self.stats["kept_pages"] += 1
            os.pwrite(fd, bytes(buf[:length]), start)

    # ------------------------------------------------------------- operations

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self.mutex:
            self._check()
            node = self._file(path, fh)
            return {
                "st_mode": node.mode,
                "st_nlink": 2 if node.is_dir else 1,
                "st_uid": node.uid,
                "st_gid": node.gid,
                "st_size": 4096 if node.is_dir else node.size,
                "st_blocks": (node.size + 511) // 512,
                "st_blksize": PAGE,
                "st_mtime": node.mtime_ns,
                "st_ctime": node.mtime_ns,
                "st_atime": node.mtime_ns,
            }

    def access(self, path: str, amode: int) -> int:
        with self.mutex:
            self._check()
            self._lookup(path)
            return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        with self.mutex:
            self._check()
            node = self._lookup(path)
            if not node.is_dir:
                raise FsError(errno.ENOTDIR)
            return [".", "..", *node.children]

    def opendir(self, path: str) -> int:
        with self.mutex:
            self._check()
            if not self._lookup(path).is_dir:
                raise FsError(errno.ENOTDIR)
            return 0

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        with self.mutex:
            self._check()
            self.stats["fsyncdirs"] += 1
            self._sync_dir(self._lookup(path or "/"))
            return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.root_path)
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        return {k: getattr(st, k) for k in (*keys, "f_frsize", "f_namemax")}

    def _add(self, path: str, node: Node) -> None:
        parent, name = self._parent(path)
        if name in parent.children:
            raise FsError(errno.EEXIST)
        parent.children[name] = node
        parent.ns_dirty = True
        parent.mtime_ns = time.time_ns()

    def mkdir(self, path: str, mode: int) -> int:
        with self.mutex:
            self._check()
            self._add(path, self._node(None, is_dir=True, mode=stat.S_IFDIR | mode))
            return 0

    def _open_fh(self, node: Node) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.fhs[fh] = node
        node.opens += 1
        return fh

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        with self.mutex:
            self._check()
            parent, name = self._parent(path)
            node = parent.children.get(name)
            if node is None:
                node = self._node(None, is_dir=False, mode=stat.S_IFREG | (mode & 0o7777))
                self._add(path, node)
            elif flags & os.O_TRUNC:
                self._truncate(node, 0)
            return self._open_fh(node)

    def open(self, path: str, flags: int) -> int:
        with self.mutex:
            self._check()
            node = self._lookup(path)
            if flags & os.O_TRUNC:
                self._truncate(node, 0)
            return self._open_fh(node)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self.mutex:
            self._check()
            node = self._file(path, fh)
            end = min(offset + size, node.size)
            out = bytearray()
            pos = offset
            while pos < end:
                page, within = divmod(pos, PAGE)
                buf = node.pages.get(page)
                if buf is None:
                    buf = self._durable_page(node, page)
                take = min(PAGE - within, end - pos)
                out += buf[within : within + take]
                pos += take
            return bytes(out)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self.mutex:
            self._check()
            node = self._file(path, fh)
            self.stats["writes"] += 1
            self.counter += 1
            pos, end, src = offset, offset + len(data), 0
            while pos < end:
                page, within = divmod(pos, PAGE)
                take = min(PAGE - within, end - pos)
                self._page(node, page)[within : within + take] = data[src : src + take]
                node.written[page] = self.counter
                pos += take
                src += take
            node.size = max(node.size, end)
            node.mtime_ns = time.time_ns()
            return len(data)

    def _truncate(self, node: Node, length: int) -> None:
        if node.is_dir:
            raise FsError(errno.EISDIR)
        if length < node.size:
            for page in [p for p in node.pages if p * PAGE >= length]:
                del node.pages[page]
                node.written.pop(page, None)
            page, within = divmod(length, PAGE)
            if within and page in node.pages:
                node.pages[page][within:] = bytes(PAGE - within)
            node.floor = min(node.floor, length)
        node.size = length
        node.mtime_ns = time.time_ns()

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self.mutex:
            self._check()
            self._truncate(self._file(path, fh), length)
            return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def release(self, path: str | None, fh: int) -> int:
        with self.mutex:
            node = self.fhs.pop(fh, None)
            if node is not None:
                node.opens -= 1
                if not node.alive():
                    self._bury(node)
            return 0

    def _bury(self, node: Node) -> None:
        """A node no name and no handle holds: its unsynced state goes; durable
        content in the orphan area goes too (under a name it stays until the
        directory is synced)."""
        node.pages.clear()
        node.written.clear()
        if node.backing is not None and node.backing.startswith(self.orphans + "/"):
            self._drop_backing(node)

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        with self.mutex:
            self._check()
            self.stats["fsyncs"] += 1
            self._sync_file(self._file(path, fh))
            return 0

    def unlink(self, path: str) -> int:
        with self.mutex:
            self._check()
            parent, name = self._parent(path)
            node = parent.children.get(name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.is_dir:
                raise FsError(errno.EISDIR)
            del parent.children[name]
            parent.ns_dirty = True
            node.linked = False
            if not node.alive():
                self._bury(node)
            return 0

    def rmdir(self, path: str) -> int:
        with self.mutex:
            self._check()
            parent, name = self._parent(path)
            node = parent.children.get(name)
            if node is None:
                raise FsError(errno.ENOENT)
            if not node.is_dir:
                raise FsError(errno.ENOTDIR)
            if node.children:
                raise FsError(errno.ENOTEMPTY)
            del parent.children[name]
            parent.ns_dirty = True
            node.linked = False
            return 0

    def rename(self, old: str, new: str) -> int:
        with self.mutex:
            self._check()
            src_dir, src_name = self._parent(old)
            node = src_dir.children.get(src_name)
            if node is None:
                raise FsError(errno.ENOENT)
            dst_dir, dst_name = self._parent(new)
            replaced = dst_dir.children.get(dst_name)
            if replaced is node:
                return 0
            if replaced is not None:
                if replaced.is_dir != node.is_dir:
                    raise FsError(errno.EISDIR if replaced.is_dir else errno.ENOTDIR)
                if replaced.is_dir and replaced.children:
                    raise FsError(errno.ENOTEMPTY)
                replaced.linked = False
                if not replaced.alive():
                    self._bury(replaced)
            del src_dir.children[src_name]
            dst_dir.children[dst_name] = node
            src_dir.ns_dirty = dst_dir.ns_dirty = True
            return 0

    def chmod(self, path: str | None, mode: int) -> int:
        with self.mutex:
            self._check()
            node = self._lookup(path or "/")
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            if node.backing is not None:
                os.chmod(node.backing, mode & 0o7777)
            return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        with self.mutex:
            self._check()
            node = self._lookup(path or "/")
            node.uid = node.uid if uid == -1 else uid
            node.gid = node.gid if gid == -1 else gid
            return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        with self.mutex:
            self._check()
            node = self._lookup(path or "/")
            node.mtime_ns = times[1] if times else time.time_ns()
            return 0


# ------------------------------------------------------------------- the process


def serve_control(ops: PowercutOps, sock_path: str) -> None:
    """One JSON line in, one out, per connection (a thread of the FS process)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(4)

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as f:
                cmd = ""
                try:
                    req = json.loads(f.readline())
                    cmd = req["cmd"]
                    if cmd == "stats":
                        answer: dict[str, Any] = {"ok": True, "stats": dict(ops.stats)}
                    elif cmd == "sync":
                        answer = {"ok": True, "stats": ops.sync_all()}
                    elif cmd == "cut":
                        stats = ops.cut(str(req.get("mode", "default")), int(req.get("seed", 0)))
                        answer = {"ok": True, "stats": stats}
                    else:
                        answer = {"ok": False, "error": f"unknown command {cmd!r}"}
                except Exception as exc:  # the test reads it
                    answer = {"ok": False, "error": repr(exc)}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()
            if answer["ok"] and cmd == "cut":
                # The power is off: closing /dev/fuse (by ending the process)
                # aborts the connection, so a process still holding a file of
                # the mount gets ENOTCONN and never holds the mount up.
                os._exit(0)

    threading.Thread(target=loop, daemon=True, name="powercut-control").start()


def _die_with_parent() -> None:
    """SIGTERM when the test process dies: libfuse then leaves its loop and
    unmounts (linux only; elsewhere the test's own cleanup has to do)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.powercut_fs")
    parser.add_argument("mount")
    parser.add_argument("backing")
    parser.add_argument("--control", required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    import mfusepy

    ops = PowercutOps(Path(args.backing))
    serve_control(ops, args.control)
    mfusepy.FUSE(
        ops,
        args.mount,
        foreground=True,
        nothreads=True,
        hard_remove=True,
        fsname="powercut",
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
    )
    return 0


# ------------------------------------------------------------------- the test's side


def fuse_ready() -> str | None:
    """Why FUSE cannot run here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (a container without FUSE?)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing: apt-get install fuse3 (./dev.sh test does)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse3 ({exc}): apt-get install libfuse3-3"
    return None


class PowercutFs:
    """The filesystem mounted at ``mount`` over ``backing``, in a process of
    its own; a context manager that always unmounts and reaps it.

    :meth:`cut` cuts the power (the mount then fails every call) and
    unmounts; :meth:`mount` mounts again over what the backing holds."""

    def __init__(self, mount: Path, backing: Path, *, log: Path | None = None) -> None:
        problem = fuse_ready()
        assert problem is None, f"the power-cut filesystem needs FUSE: {problem}"
        self.mount_point = mount
        self.backing = backing
        self.control = str(backing.parent / f".{backing.name}.control")
        self.log = log or backing.parent / f"{backing.name}.fs.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.mounts = 0
        self.totals: dict[str, int] = {}

    def __enter__(self) -> PowercutFs:
        self.mount()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    def mount(self) -> None:
        assert self.proc is None, "mounted already"
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self.backing.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control)
        root = Path(__file__).resolve().parents[2]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.powercut_fs",
                    str(self.mount_point),
                    str(self.backing),
                    "--control",
                    self.control,
                ],
                cwd=root,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        self.mounts += 1
        deadline = time.monotonic() + 20
        try:
            while not (os.path.ismount(self.mount_point) and os.path.exists(self.control)):
                if self.proc.poll() is not None:
                    raise AssertionError(f"the power-cut filesystem did not mount: {self.tail()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no mount within 20 s: {self.tail()}")
                time.sleep(0.01)
        except BaseException:
            self.unmount()
            raise

    def ask(self, **req: Any) -> dict[str, int]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.control)
            s.sendall(json.dumps(req).encode() + b"\n")
            answer = json.loads(s.makefile("rb").readline())
        assert answer["ok"], answer
        stats: dict[str, int] = answer["stats"]
        return stats

    def stats(self) -> dict[str, int]:
        return self.ask(cmd="stats")

    def sync(self) -> dict[str, int]:
        return self.ask(cmd="sync")

    def cut(self, mode: str = "default", seed: int = 0) -> dict[str, int]:
        """Power off (what was not synced is lost), then unmount."""
        stats = self.ask(cmd="cut", mode=mode, seed=seed)
        for key, value in stats.items():
            self.totals[key] = self.totals.get(key, 0) + value
        self.unmount()
        return stats

    def unmount(self) -> None:
        """Lazy unmount and reap; safe to call twice, and whatever state it is in."""
        proc, self.proc = self.proc, None
        if os.path.ismount(self.mount_point) or proc is not None:
            subprocess.run(
                ["fusermount3", "-u", "-z", str(self.mount_point)],
                capture_output=True,
                check=False,
            )
        if proc is None:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a file of the mount still open: abort
            proc.kill()
            proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


if __name__ == "__main__":
    sys.exit(main())
