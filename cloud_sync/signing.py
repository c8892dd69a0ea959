"""HMAC-SHA256 signatures of sync-v1 requests and answers.

Promises (contracts/sync-v1.md, "Authentication"):

- a request is signed over ``METHOD + "\\n" + PATH_AND_QUERY + "\\n" + BODY`` and an
  answer over ``STATUS + "\\n" + PATH_AND_QUERY + "\\n" + BODY`` (STATUS in decimal,
  PATH_AND_QUERY the request's, exactly as sent), with the box's shared secret;
- the header value is ``sha256=<lowercase hex>``; verification compares in
  constant time and accepts upper-case hex, nothing else;
- the secret never appears in ``repr``, ``str``, logs or exceptions.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="
HEADER = "X-Signature"
BOX_HEADER = "X-Box-Id"


def _digest(key: bytes, head: str, path_and_query: str, body: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(f"{head}\n{path_and_query}\n".encode())
    mac.update(body)
    return PREFIX + mac.hexdigest()


class Signer:
    """Signs and verifies with one shared secret, which it never shows."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ValueError("the sync secret is empty")
        self._key = key

    def __repr__(self) -> str:
        return "Signer(<secret hidden>)"

    __str__ = __repr__

    def request(self, method: str, path_and_query: str, body: bytes) -> str:
        """``X-Signature`` of a request."""
        return _digest(self._key, method.upper(), path_and_query, body)

    def answer(self, status: int, path_and_query: str, body: bytes) -> str:
        """``X-Signature`` of an answer to a request for ``path_and_query``."""
        return _digest(self._key, str(int(status)), path_and_query, body)

    def verify_request(
        self, header: str | None, method: str, path_and_query: str, body: bytes
    ) -> bool:
        return _same(header, self.request(method, path_and_query, body))

    def verify_answer(
        self, header: str | None, status: int, path_and_query: str, body: bytes
    ) -> bool:
        return _same(header, self.answer(status, path_and_query, body))


def _same(header: str | None, expected: str) -> bool:
    if not header or not header.startswith(PREFIX):
        return False
    given = PREFIX + header[len(PREFIX) :].strip().lower()
    # compare_digest on ASCII bytes: constant time in the length of the input
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
