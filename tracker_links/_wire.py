"""Sans-I/O HTTP/1.1 heads for the client side: request bytes out, response heads in.

Like h11's writers and the head half of its readers, but only what
:mod:`tracker_links._http11` needs (the bodies are :mod:`tracker_links._framing`'s):

- :func:`serialize` and :func:`prepare` / :func:`request_bytes` write a request;
- :func:`parse_head` parses and validates a response head (RFC 9112), and
  :func:`parse_fields` a block of field lines (trailers).

Strict where RFC 9112 says a recipient must reject: no CR, LF, NUL or other control in the
status line or a header value, header names are tokens, only ``chunked`` as a transfer
coding, chunk sizes without junk, trailers that are header lines, status 100-599, version
``HTTP/1.x`` (a minor version above 1 reads as 1.1). An obsolete folded header line is
unfolded (each fold replaced by one space, RFC 9112 5.2) before its value is interpreted.
Every violation is an ``httpx.RemoteProtocolError`` raised as soon as the bytes show it.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import httpx

__all__ = [
    "MAX_BODY",
    "Head",
    "Prepared",
    "error",
    "parse_fields",
    "parse_head",
    "prepare",
    "request_bytes",
    "serialize",
]

MAX_BODY: Final = 64 * 1024 * 1024  # bytes of one body: far above any Tracker answer

METHODS: Final = {m: m.encode("ascii") for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")}
DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FOLD: Final = re.compile(rb"\r\n[ \t]+")
_STATUS_LINE: Final = re.compile(
    rb"HTTP/1\.([0-9]) ([1-5][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?"
)
_new: Final = tuple.__new__  # a NamedTuple without its Python-level __new__ (hot path)


def error(message: str) -> httpx.RemoteProtocolError:
    """A protocol error: what the library raises for a response that breaks RFC 9112."""
    return httpx.RemoteProtocolError(message)


# -- requests ---------------------------------------------------------------------------


def serialize(request: httpx.Request, url: httpx.URL, body: bytes) -> tuple[bytes, bool]:
    """The request's bytes (head and body, one buffer) and whether it allows keep-alive."""
    method = request.method
    parts = [METHODS.get(method) or method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    has_host = has_length = False
    drop_chunked = False
    keep_alive = True
    lines = 2  # the request line and the blank line
    for name, value in request.headers.raw:
        n = len(name)
        if n == 4:
            has_host = has_host or name.lower() == b"host"
        elif n == 14:
            has_length = has_length or name.lower() == b"content-length"
        elif n == 17 and name.lower() == b"transfer-encoding":
            drop_chunked = True  # the body was read whole: it goes with a Content-Length
            continue
        elif n == 10 and name.lower() == b"connection" and b"close" in value.lower():
            keep_alive = False
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if not has_host:
        parts[4:4] = (b"Host: ", url.netloc, b"\r\n")
        lines += 1
    if (body or drop_chunked) and not has_length:
        parts += (b"Content-Length: ", b"%d" % len(body), b"\r\n")
        lines += 1
    parts.append(b"\r\n")
    parts.append(body)
    data = b"".join(parts)
    end = len(data) - len(body)
    if data.count(b"\n", 0, end) != lines or data.count(b"\r", 0, end) != lines:
        raise httpx.LocalProtocolError("a CR or LF inside the request line or a header")
    return data, keep_alive


class Prepared:
    """A base URL and its request headers as bytes (:func:`prepare`).

    The header block holds the credentials: the repr names the headers, never their values.
    """

    __slots__ = ("base_url", "block", "headers", "keep_alive", "prefix")

    def __init__(
        self,
        base_url: httpx.URL,
        headers: httpx.Headers,
        prefix: bytes,
        block: bytes,
        keep_alive: bool,
    ) -> None:
        self.base_url = base_url
        self.headers = headers
        self.prefix = prefix  # the base URL's path, without a trailing slash
        self.block = block  # the header lines, each ending in CRLF (Host included)
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        names = ", ".join(self.headers.keys())
        return f"<Prepared {self.base_url} headers: {names}>"


def prepare(base_url: httpx.URL, headers: httpx.Headers) -> Prepared:
    """Turn a base URL and the headers every request carries into bytes, once.

    Raises ``httpx.LocalProtocolError`` if a header holds a CR or LF,
    ``httpx.UnsupportedProtocol`` for a scheme other than http and https.
    """
    if base_url.raw_scheme not in DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(
            f"FastTransport speaks http:// and https:// only, not {base_url.scheme!r}"
        )
    lines: list[bytes] = []
    keep_alive = True
    has_host = False
    for name, value in headers.raw:
        lower = name.lower()
        if lower in (b"content-length", b"transfer-encoding"):
            continue  # per request
        if b"\r" in name + value or b"\n" in name + value:
            raise httpx.LocalProtocolError("a CR or LF inside a header")
        if lower == b"host":
            has_host = True
        elif lower == b"connection" and b"close" in value.lower():
            keep_alive = False
        lines.append(name + b": " + value + b"\r\n")
    if not has_host:
        lines.insert(0, b"Host: " + base_url.netloc + b"\r\n")
    return Prepared(
        base_url=base_url,
        headers=headers,
        prefix=base_url.raw_path.rstrip(b"/"),
        block=b"".join(lines),
        keep_alive=keep_alive,
    )


def request_bytes(prepared: Prepared, method: str, path: str, body: bytes | None) -> bytes:
    """One request to the prepared base URL + ``path`` (URL-safe ASCII), head and body."""
    return b"".join(
        (
            METHODS.get(method) or method.encode("ascii"),
            b" ",
            prepared.prefix,
            path.encode("ascii"),
            b" HTTP/1.1\r\n",
            prepared.block,
            b"Content-Length: %d\r\n\r\n" % len(body) if body else b"\r\n",
            body or b"",
        )
    )


# -- response heads ---------------------------------------------------------------------


class Head(NamedTuple):
    """A parsed response head."""

    status: int
    reason: bytes
    version: bytes  # b"HTTP/1.0" or b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]]
    length: int  # Content-Length, -1 if none (or chunked)
    chunked: bool
    keep_alive: bool  # by version and Connection (and framing)
    coded: bool  # a Content-Encoding (other than identity) to decode


# Every byte allowed inside a field line: all but the controls (HTAB aside).
_VALUE_BYTES: Final = bytes(b for b in range(256) if b == 9 or 32 <= b < 127 or b > 127)
_LINE_ENDS: Final = tuple(b"\r\n" * n for n in range(256))  # what the check leaves of n lines


def _line_ends(n: int) -> bytes:
    return _LINE_ENDS[n] if n < 256 else b"\r\n" * n


_TOKEN_RE: Final = re.compile(_TOKEN)
# The header names that frame a message or decide on the connection, and the others: 0.
_ORDINARY: Final = 0
_CONTENT_LENGTH: Final = 1
_TRANSFER_ENCODING: Final = 2
_CONTENT_ENCODING: Final = 3
_CONNECTION: Final = 4
_KINDS: Final = {
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"content-encoding": _CONTENT_ENCODING,
    b"connection": _CONNECTION,
}
# Header names seen valid, with their kind (a server sends the same few in each answer): a
# dict lookup instead of a regex and a lower() per line. Bounded.
_NAMES: Final[dict[bytes, int]] = {}
_MAX_NAMES: Final = 512


def _check_lines(block: bytes, what: str) -> None:
    """Fail on the line of ``block`` that holds a control (but HTAB) or a bare CR or LF."""
    for line in block.split(b"\r\n"):
        if line.translate(None, _VALUE_BYTES):
            raise error(f"a control character or bare CR/LF in a {what} line: {line[:100]!r}")
    raise error(f"malformed {what} section")  # pragma: no cover - found above


class _Folded(Exception):
    """The head has obs-folds: to be unfolded before its values are interpreted."""


def _refuse(message: str, block: bytes) -> httpx.RemoteProtocolError | _Folded:
    """The error for a bad value, unless a fold continues it: unfold and look again."""
    if b"\r\n " in block or b"\r\n\t" in block:
        return _Folded()
    return error(message)


def _check_name(name: bytes, sep: bytes, line: bytes, what: str) -> int:
    """The kind of a header name not seen before (a token, or the line is malformed)."""
    if line[:1] in (b" ", b"\t"):
        raise _Folded
    if not sep or _TOKEN_RE.fullmatch(name) is None:
        raise error(f"malformed {what} line: {line[:100]!r}")
    kind = _KINDS.get(name.lower(), _ORDINARY)
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = kind
    return kind


def _unfold(block: bytes, what: str) -> bytes:
    """``block`` with each obs-fold replaced by a space (RFC 9112 5.2); a fold first fails."""
    if block[:1] in (b" ", b"\t"):
        raise error(f"malformed {what} line: a continuation line first: {block[:100]!r}")
    return _FOLD.sub(b" ", block)


def parse_fields(block: bytes, what: str = "header") -> list[tuple[bytes, bytes]]:
    """Validated ``(name, value)`` pairs of ``block``: field lines, each ending in CRLF."""
    if b"\r\n " in block or b"\r\n\t" in block:
        block = _unfold(block, what)
    lines = block[:-2].split(b"\r\n")
    if block.translate(None, _VALUE_BYTES) != _line_ends(len(lines)):
        _check_lines(block, what)
    fields = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or name not in _NAMES:
            _check_name(name, sep, line, what)
        fields.append((name, value.strip(b" \t")))
    return fields


def parse_head(buf: bytes | bytearray, start: int = 0, end: int = -1) -> Head:
    """Parse and validate the response head at ``buf[start:end]`` (all of ``buf`` by default).

    The head is the status line and the header lines, each ending in CRLF (the blank line
    that ends the head excluded).
    """
    if end < 0:
        end = len(buf)
    if not isinstance(buf, bytes):
        buf, end, start = bytes(buf[start:end]), end - start, 0
    eol = buf.find(b"\r\n", start, end)
    if eol < 0:
        eol = end
    try:
        return _parse_head(buf, start, eol, end)
    except _Folded:  # obs-fold: unfold, then interpret the values again (a fold first fails)
        return parse_head(buf[start : eol + 2] + _unfold(buf[eol + 2 : end], "header"))


def _parse_head(buf: bytes, start: int, eol: int, end: int) -> Head:
    match = _STATUS_LINE.fullmatch(buf, start, eol)
    if match is None:
        raise error(f"malformed status line: {buf[start:eol][:100]!r}")
    minor, code, reason = match.groups()
    version = b"HTTP/1.0" if minor == b"0" else b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = []
    length = -1
    chunked = False
    coded = False
    keep_alive = version == b"HTTP/1.1"
    if end > eol + 2:
        block = buf[eol + 2 : end - 2]  # without the last CRLF
        lines = block.split(b"\r\n")
        n = len(lines) - 1
        if block.translate(None, _VALUE_BYTES) != (_LINE_ENDS[n] if n < 256 else _line_ends(n)):
            _check_lines(block, "header")
        for line in lines:
            name, sep, value = line.partition(b":")
            kind = _NAMES.get(name) if sep else None  # a name seen before, then a colon
            if kind is None:
                kind = _check_name(name, sep, line, "header")
            value = value.strip(b" \t")
            headers.append((name, value))
            if not kind:
                continue
            if kind == _CONTENT_LENGTH:
                number = _content_length(value, block)
                if length >= 0 and number != length:
                    raise _refuse("conflicting Content-Length headers", block)
                length = number
            elif kind == _TRANSFER_ENCODING:
                if chunked or value.lower() != b"chunked":
                    message = f"unsupported Transfer-Encoding {value[:50]!r}: only chunked is"
                    raise _refuse(message, block)
                chunked = True
            elif kind == _CONTENT_ENCODING:
                if value.lower() != b"identity":
                    coded = True
            else:  # Connection
                tokens = [t.strip(b" \t") for t in value.lower().split(b",")]
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
    if chunked and length >= 0:
        keep_alive = False  # RFC 9112 6.3: chunked wins; don't trust the connection after
        length = -1
    return _new(
        Head, (int(code), reason or b"", version, headers, length, chunked, keep_alive, coded)
    )


def _content_length(value: bytes, block: bytes) -> int:
    if not value.isdigit():
        # A list of one repeated value is allowed (RFC 9110 8.6).
        values = {v.strip(b" \t") for v in value.split(b",")}
        if len(values) != 1 or not (value := values.pop()).isdigit():
            raise _refuse(f"bad Content-Length: {value[:50]!r}", block)
    if len(value) > 18:
        raise error(f"Content-Length {value[:50]!r} over the body limit of {MAX_BODY} bytes")
    return int(value)
