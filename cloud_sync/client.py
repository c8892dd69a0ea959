"""The HTTP side of sync-v1 for the edge: signed requests, verified answers.

One :class:`SyncClient` (one aiohttp session, bounded timeouts) serves the
uploader and the downloader. It promises:

- every request carries ``X-Box-Id`` and ``X-Signature`` over the exact method,
  path-and-query and body it sends: the base URL's path prefix is
  percent-encoded once, here, and the URL is passed to aiohttp pre-encoded, so
  what is signed is what goes on the wire;
- a cursor goes into the query as it is: sync-v1 cursors are URL-safe
  (``A-Z a-z 0-9 - _ .``), and any other is refused (:class:`BadCursorError`),
  never re-encoded;
- every answer comes back as a :class:`Reply` that says whether its signature
  verified; the callers trust no ack and apply no change whose reply is not
  ``signed``;
- timeouts, refused connections and resets become :class:`CloudUnreachableError`;
  nothing is retried here (the callers own their back-off);
- an ``https`` cloud's certificate and host name are always verified (TLS 1.2
  or newer), against ``ca_file`` when given, else the system's CAs; there is no
  switch to turn that off. An untrusted certificate is a
  :class:`CloudTlsError`, a kind of :class:`CloudUnreachableError` (retried
  like any transport failure) whose message says what to fix.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from cloud_sync.codec import MSGPACK, decode_answer, url_safe
from cloud_sync.signing import BOX_HEADER, HEADER, Signer
from common.errors import PickEdgeError
from common.tls import client_context, describe_verify_error

BATCHES_PATH = "/sync/v1/batches"
CHANGES_PATH = "/sync/v1/changes"


class SecretLike(Protocol):
    """A secret that shows itself only when asked (the box's config ``Secret``)."""

    def reveal(self) -> str: ...


class SyncError(PickEdgeError):
    """Sync with the cloud did not succeed this time."""

    code = "sync_error"


class CloudUnreachableError(SyncError, ConnectionError):
    """No answer: refused, reset, or timed out."""

    code = "cloud_unreachable"


class CloudTlsError(CloudUnreachableError):
    """The cloud's TLS certificate did not verify (wrong CA bundle, wrong host
    name, expired, or someone in between)."""

    code = "cloud_tls_untrusted"


class BadCursorError(SyncError, ValueError):
    """A cursor that is not URL-safe: sync-v1 forbids it, and re-encoding it
    would sign one query and send another."""

    code = "bad_cursor"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    #: the decoded body (None when empty or undecodable)
    doc: Any
    #: the answer carries a signature that verifies
    signed: bool
    #: the answer carries a signature (valid or not)
    has_signature: bool


class SyncClient:
    """Signed sync-v1 requests of one box to one cloud."""

    def __init__(
        self,
        base_url: str,
        box_id: str,
        secret: SecretLike | str | bytes,
        *,
        timeout_s: float = 10.0,
        accept: str = MSGPACK,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"cloud url must be http(s)://host[:port][/prefix], not {base_url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        # built now, so that an unusable CA file is reported at start-up (TlsConfigError)
        self._tls: ssl.SSLContext | None = (
            client_context(ca_file) if parts.scheme == "https" else None
        )
        # percent-encoded once, keeping what is already encoded: this is the
        # prefix both signed and sent
        self._prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
        self.box_id = box_id
        self._signer = Signer(secret if isinstance(secret, str | bytes) else secret.reveal())
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._accept = accept
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"SyncClient({self._origin}{self._prefix}, box={self.box_id!r})"

    async def __aenter__(self) -> SyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._tls) if self._tls is not None else None
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def post_batch(self, body: bytes) -> Reply:
        headers = {"Content-Type": MSGPACK}
        return await self._request("POST", self._prefix + BATCHES_PATH, body, headers)

    async def get_changes(self, cursor: str | None, limit: int) -> Reply:
        """One page of changes after ``cursor``; :class:`BadCursorError` when
        the cursor is not URL-safe (nothing is sent)."""
        query = f"limit={int(limit)}"
        if cursor is not None:
            if not url_safe(cursor):
                raise BadCursorError(
                    f"cursor {cursor[:80]!r} is not URL-safe (sync-v1 allows only "
                    "A-Z a-z 0-9 - _ .): the cloud sent a cursor the contract forbids"
                )
            query = f"cursor={cursor}&" + query
        return await self._request("GET", f"{self._prefix}{CHANGES_PATH}?{query}", b"", {})

    async def _request(
        self, method: str, path_and_query: str, body: bytes, headers: dict[str, str]
    ) -> Reply:
        headers = {
            **headers,
            "Accept": self._accept,
            BOX_HEADER: self.box_id,
            HEADER: self._signer.request(method, path_and_query, body),
        }
        url = URL(self._origin + path_and_query, encoded=True)
        try:
            async with self._get_session().request(
                method, url, data=body or None, headers=headers
            ) as resp:
                payload = await resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type")
                signature = resp.headers.get(HEADER)
        except TimeoutError as exc:
            raise CloudUnreachableError(f"{method} {path_and_query}: timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            untrusted = describe_verify_error(exc)
            if untrusted is not None:
                raise CloudTlsError(
                    f"{method} {path_and_query}: the cloud at {self._origin}: {untrusted}; "
                    "set [cloud] ca_file to the CA that issued it"
                ) from exc
            raise CloudUnreachableError(
                f"{method} {path_and_query}: {type(exc).__name__}: {exc}"
            ) from exc
        signed = self._signer.verify_answer(signature, status, path_and_query, payload)
        try:
            doc = decode_answer(payload, ctype)
        except ValueError:
            doc = None
        return Reply(status=status, doc=doc, signed=signed, has_signature=signature is not None)
