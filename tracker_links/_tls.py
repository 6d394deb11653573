"""TLS: the SSL context from ``TrackerClient(verify=...)``, and telling a TLS failure that no
retry can fix (an untrusted, expired or wrong-host certificate, a port that does not speak TLS)
from a network hiccup."""

from __future__ import annotations

import os
import ssl
from typing import Final, TypeAlias

import certifi

from ._exceptions import InvalidInputError

__all__ = ["ProtocolRefused", "Verify", "describe", "make_context", "permanent_failure", "resolve"]

Verify: TypeAlias = "bool | str | os.PathLike[str] | ssl.SSLContext"

# OpenSSL reasons that mean the other end does not speak TLS (an http:// port, for instance).
_NOT_TLS: Final = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
    }
)
HINT: Final = (
    "if the server's certificate comes from a private or corporate CA, pass its CA bundle as "
    "TrackerClient(verify='/path/to/ca.pem') (command line: --ca-bundle), or set SSL_CERT_FILE"
)


class ProtocolRefused(Exception):
    """The server chose a protocol over ALPN that this client does not speak (``h2``): the
    ``SSLContext`` given as ``verify=`` offers it. No retry can fix that either."""

    def __init__(self, alpn: str) -> None:
        super().__init__(alpn)
        self.alpn = alpn


def resolve(verify: Verify) -> ssl.SSLContext | bool:
    """``verify`` checked at once: a path becomes its context (an unreadable or malformed
    bundle is an ``InvalidInputError`` now, not at the first request); a bool stays one, for
    the context to be made on the first TLS connection."""
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    return make_context(verify)


def make_context(verify: Verify) -> ssl.SSLContext:
    """The SSL context for ``verify``; a caller's own ``SSLContext`` is returned unchanged.

    ``True``: the system's trust store (OpenSSL's default paths, which ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` override) plus certifi's bundle (what httpx trusts by default). A path: a
    PEM CA bundle file, or a directory of hashed certificates. ``False``: no verification.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify  # the caller's: not mutated (no ALPN set: the server then speaks 1.1)
    if verify is True:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=certifi.where())
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        try:
            if os.path.isdir(path):
                context = ssl.create_default_context(capath=path)
            else:
                context = ssl.create_default_context(cafile=path)
        except FileNotFoundError:
            raise InvalidInputError(f"verify={path!r}: no such CA bundle") from None
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            raise InvalidInputError(f"verify={path!r}: not a PEM CA bundle ({reason})") from None
    else:
        raise InvalidInputError(
            "verify= must be True, False, a CA bundle path or an ssl.SSLContext, "
            f"got {type(verify).__name__}"
        )
    context.set_alpn_protocols(["http/1.1"])
    return context


def permanent_failure(exc: BaseException) -> ssl.SSLError | ProtocolRefused | None:
    """The TLS error behind ``exc`` if no retry can fix it (a certificate, a non-TLS port, a
    context that offers ``h2``)."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of a mapped exception is short
        if seen is None:
            break
        if isinstance(seen, (ssl.SSLCertVerificationError, ProtocolRefused)):
            return seen
        if isinstance(seen, ssl.SSLError) and getattr(seen, "reason", None) in _NOT_TLS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def describe(error: ssl.SSLError | ProtocolRefused, host: str) -> str:
    """What failed, for whom, and what to do about it."""
    if isinstance(error, ProtocolRefused):
        return (
            f"TLS handshake with {host}: the server chose {error.alpn!r} over ALPN, not "
            "http/1.1: an SSLContext given as verify= must offer only http/1.1 "
            "(context.set_alpn_protocols(['http/1.1']))"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        what = error.verify_message or error.reason or "certificate verify failed"
        return f"TLS certificate of {host} not accepted: {what}; {HINT}"
    return (
        f"TLS handshake with {host} failed ({error.reason}): the port does not speak TLS; "
        "check the base URL's scheme and port"
    )
