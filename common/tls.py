"""TLS contexts the box uses, built one way everywhere (issue 14).

- :func:`server_context`: the PDA API's certificate and key, TLS 1.2 or newer.
- :func:`client_context`: a client that always verifies the peer (certificate
  chain *and* host name) against a CA bundle file, or the system's CAs when no
  file is given, TLS 1.2 or newer, with an optional client certificate. There
  is deliberately no switch that turns verification off.

Every failure to build a context is a :class:`TlsConfigError` naming the file
and what is wrong with it; nothing here logs or prints a key's content.
"""

from __future__ import annotations

import ssl

from common.errors import PickEdgeError

__all__ = ["TlsConfigError", "client_context", "describe_verify_error", "server_context"]


class TlsConfigError(PickEdgeError, ValueError):
    """A certificate, key or CA file that cannot be used."""

    code = "tls_config"


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context presenting ``cert_file`` (PEM, the chain after the leaf)
    with ``key_file``; :class:`TlsConfigError` when they cannot be loaded or do
    not match."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _load_pair(ctx, cert_file, key_file, "certificate")
    return ctx


def _load_pair(ctx: ssl.SSLContext, cert_file: str, key_file: str, what: str) -> None:
    """``ctx`` presents ``cert_file`` with ``key_file``; :class:`TlsConfigError`
    naming the file (never more of the path than it has) when they cannot."""
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TlsConfigError(f"TLS file {exc.filename or cert_file} does not exist") from None
    except PermissionError as exc:
        raise TlsConfigError(f"TLS file {exc.filename or key_file} is not readable") from None
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"{what} {cert_file} and key {key_file} cannot be used together "
            f"(not PEM, encrypted, or not a pair): {exc.reason or exc}"
        ) from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it, a directory…
        raise TlsConfigError(f"TLS files cannot be read: {_why(exc)}") from None


def _why(exc: OSError | ValueError) -> str:
    """The reason without the path (a path can be 70,000 characters of junk)."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)[:80]


def client_context(
    ca_file: str | None = None, *, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A verifying client context: trusts ``ca_file`` (PEM bundle) only, else the
    system's CAs; presents ``cert_file``/``key_file`` when given."""
    if ca_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # without the system's CAs
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise TlsConfigError(f"CA file {ca_file} does not exist") from None
        except PermissionError:
            raise TlsConfigError(f"CA file {ca_file} is not readable") from None
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"CA file {ca_file} holds no usable PEM certificate: {exc.reason or exc}"
            ) from None
        except (OSError, ValueError) as exc:
            raise TlsConfigError(f"CA file cannot be read: {_why(exc)}") from None
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    _harden(ctx)
    # both are the defaults already; said here so that no later change can
    # quietly weaken them
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise TlsConfigError("a client certificate needs both its certificate and key file")
        _load_pair(ctx, cert_file, key_file, "client certificate")
    return ctx


def describe_verify_error(exc: BaseException) -> str | None:
    """A person's sentence for a failed certificate check found in ``exc`` or
    its causes, else ``None``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            # (aiohttp's ClientConnectorCertificateError is one too, without the fields)
            inner = getattr(cur, "certificate_error", cur)
            why = getattr(inner, "verify_message", None) or getattr(inner, "reason", None)
            return f"its TLS certificate is not trusted ({why or inner})"
        cur = cur.__cause__ or cur.__context__
    return None
