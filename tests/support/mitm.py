"""A man in the middle for sync-v1 tests.

:class:`Mitm` is a real aiohttp server on loopback that a box's
:class:`~cloud_sync.client.SyncClient` talks to instead of the cloud. Each
request gets one *act*, taken from ``plan`` (in order), else from ``policy``
(a function of the request), else :data:`PASS`:

- :class:`Pass` forwards the request to the cloud and relays its answer;
- :class:`Strip` forwards it and relays the answer without its signature;
- :class:`Replay` answers with an answer the cloud gave earlier (an
  :class:`Exchange` from ``log``), signature and all, after forwarding the
  request or not;
- :class:`Forge` answers with a document of its own, unsigned or signed with a
  secret (a "recorded" answer of another batch or epoch), after forwarding the
  request or not. Its document may be a function of the batch sent
  (:class:`~cloud_sync.codec.Echo`), to echo it.

Every request is logged as an :class:`Exchange`: the request target exactly as
it arrived on the request line, the request, and the cloud's own answer when
forwarded (``log`` is what a recording proxy keeps). With ``upstream=None``
nothing can be forwarded: every request must be forged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack
from aiohttp import web
from yarl import URL

from cloud_sync.codec import Echo, answer_echo, encode_answer
from cloud_sync.signing import BOX_HEADER, HEADER, Signer

_FORWARDED = ("Content-Type", "Accept", BOX_HEADER, HEADER)


@dataclass
class Exchange:
    """One request through the proxy, and the cloud's answer to it (if forwarded)."""

    method: str
    #: the request target as received: path and query, encoded as sent
    target: str
    headers: dict[str, str]
    body: bytes
    #: the batch it carried (None for a GET or an unreadable body)
    batch: Echo | None
    #: the cloud's answer; None when not forwarded or the cloud did not answer
    status: int | None = None
    answer_headers: dict[str, str] = field(default_factory=dict)
    answer_body: bytes = b""
    #: the act the proxy took
    act: Act | None = None
    #: why forwarding got no answer
    error: str | None = None

    @property
    def signed_answer(self) -> bool:
        return HEADER in self.answer_headers


@dataclass(frozen=True)
class Pass:
    forward: bool = True


@dataclass(frozen=True)
class Strip:
    forward: bool = True


@dataclass(frozen=True)
class Replay:
    #: a logged exchange whose cloud answer is played back
    of: Exchange
    forward: bool = False


@dataclass(frozen=True)
class Forge:
    status: int
    #: the document, or a function of the batch sent (None for a GET)
    doc: dict[str, Any] | Callable[[Echo | None], dict[str, Any]]
    forward: bool = True
    #: signs the forged answer (a recording of another batch); None: unsigned
    signer: Signer | None = None


Act = Pass | Strip | Replay | Forge
PASS = Pass()


class Mitm:
    """``async with Mitm(cloud_url) as mitm``: point the box at ``mitm.url``."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.plan: deque[Act] = deque()
        self.policy: Callable[[Exchange], Act] | None = None
        self.log: list[Exchange] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> Mitm:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[-1][1]}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ views

    def answers(self, status: int | None = None) -> list[Exchange]:
        """The logged exchanges the cloud answered (with ``status``), in order."""
        return [x for x in self.log if x.status is not None and status in (None, x.status)]

    # ------------------------------------------------------------------ handler

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        x = Exchange(
            method=request.method,
            target=request.raw_path,
            headers={k: v for k in _FORWARDED if (v := request.headers.get(k)) is not None},
            body=body,
            batch=_envelope(body) if request.method == "POST" else None,
        )
        self.log.append(x)
        if self.plan:
            act = self.plan.popleft()
        elif self.policy is not None:
            act = self.policy(x)
        else:
            act = PASS
        x.act = act
        if act.forward:
            await self._forward(x)
        if isinstance(act, Pass | Strip):
            if x.status is None:
                return web.Response(status=502, text="the cloud did not answer")
            headers = dict(x.answer_headers)
            if isinstance(act, Strip):
                headers.pop(HEADER, None)
            return web.Response(status=x.status, body=x.answer_body, headers=headers)
        if isinstance(act, Replay):
            old = act.of
            assert old.status is not None, "replay of an exchange the cloud never answered"
            return web.Response(status=old.status, body=old.answer_body, headers=old.answer_headers)
        doc = act.doc(x.batch) if callable(act.doc) else act.doc
        payload, ctype = encode_answer(doc, request.headers.get("Accept"))
        headers = {"Content-Type": ctype}
        if act.signer is not None:
            headers[HEADER] = act.signer.answer(act.status, x.target, payload)
        return web.Response(status=act.status, body=payload, headers=headers)

    async def _forward(self, x: Exchange) -> None:
        assert self.upstream is not None and self._session is not None, "no cloud to forward to"
        url = URL(self.upstream + x.target, encoded=True)
        try:
            async with self._session.request(
                x.method, url, data=x.body or None, headers=x.headers
            ) as resp:
                x.answer_body = await resp.read()
                x.status = resp.status
                x.answer_headers = {
                    k: v for k in ("Content-Type", HEADER) if (v := resp.headers.get(k)) is not None
                }
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            x.error = f"{type(exc).__name__}: {exc}"  # no answer: the proxy answers 502


def _envelope(body: bytes) -> Echo | None:
    try:
        doc = msgpack.unpackb(body, raw=False)
    except Exception:
        return None
    return answer_echo(doc)


__all__ = ["PASS", "Act", "Exchange", "Forge", "Mitm", "Pass", "Replay", "Strip"]
