"""Sans-I/O HTTP/1.1 for the client side: bytes in, bytes or parsed responses out, no awaits.

Like h11's readers and writers, but only what :mod:`tracker_links._http11` needs:

- :func:`serialize` and :func:`prepare` / :func:`request_bytes` write a request head;
- :func:`parse_head` parses and validates a response head (RFC 9112);
- :class:`ChunkedDecoder` decodes a chunked body incrementally, fed bytes;
- :class:`ResponseParser` reads one whole response fed bytes as they arrive: interim (1xx)
  responses skipped, then the head and the body by its framing (none, ``Content-Length``,
  chunked, or up to EOF), within bounded sizes.

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
    "MAX_HEAD",
    "MAX_INTERIM",
    "Answer",
    "ChunkedDecoder",
    "Head",
    "Prepared",
    "ResponseParser",
    "parse_head",
    "prepare",
    "request_bytes",
    "serialize",
]

MAX_HEAD: Final = 65536  # bytes of status line + headers (or of trailers, or a chunk-size line)
MAX_BODY: Final = 64 * 1024 * 1024  # bytes of one body: far above any Tracker answer
MAX_INTERIM: Final = 100  # 1xx responses before the final one

METHODS: Final = {m: m.encode("ascii") for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")}
DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FOLD: Final = re.compile(rb"\r\n[ \t]+")
_STATUS_LINE: Final = re.compile(
    rb"HTTP/1\.([0-9]) ([1-5][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?"
)
_CHUNK_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?")
_new: Final = tuple.__new__  # a NamedTuple without its Python-level __new__ (hot path)
_EOF_BODY: Final = "peer closed connection without sending complete message body"
NO_RESPONSE: Final = "Server disconnected without sending a response."


def _error(message: str) -> httpx.RemoteProtocolError:
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
            raise _error(f"a control character or bare CR/LF in a {what} line: {line[:100]!r}")
    raise _error(f"malformed {what} section")  # pragma: no cover - found above


class _Folded(Exception):
    """The head has obs-folds: to be unfolded before its values are interpreted."""


def _refuse(message: str, block: bytes) -> httpx.RemoteProtocolError | _Folded:
    """The error for a bad value, unless a fold continues it: unfold and look again."""
    if b"\r\n " in block or b"\r\n\t" in block:
        return _Folded()
    return _error(message)


def _check_name(name: bytes, sep: bytes, line: bytes, what: str) -> int:
    """The kind of a header name not seen before (a token, or the line is malformed)."""
    if line[:1] in (b" ", b"\t"):
        raise _Folded
    if not sep or _TOKEN_RE.fullmatch(name) is None:
        raise _error(f"malformed {what} line: {line[:100]!r}")
    kind = _KINDS.get(name.lower(), _ORDINARY)
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = kind
    return kind


def _unfold(block: bytes, what: str) -> bytes:
    """``block`` with each obs-fold replaced by a space (RFC 9112 5.2); a fold first fails."""
    if block[:1] in (b" ", b"\t"):
        raise _error(f"malformed {what} line: a continuation line first: {block[:100]!r}")
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
        if name not in _NAMES:
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
    eol = buf.find(b"\r\n", start, end)
    if eol < 0:
        eol = end
    try:
        return _parse_head(buf, start, eol, end)
    except _Folded:  # obs-fold: unfold, then interpret the values again (a fold first fails)
        unfolded = bytes(buf[start : eol + 2]) + _unfold(bytes(buf[eol + 2 : end]), "header")
        return _parse_head(unfolded, 0, eol - start, len(unfolded))


def _parse_head(buf: bytes | bytearray, start: int, eol: int, end: int) -> Head:
    match = _STATUS_LINE.fullmatch(buf, start, eol)
    if match is None:
        raise _error(f"malformed status line: {bytes(buf[start:eol])[:100]!r}")
    minor, code, reason = match.groups()
    version = b"HTTP/1.0" if minor == b"0" else b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = []
    length = -1
    chunked = False
    coded = False
    keep_alive = version == b"HTTP/1.1"
    if end > eol + 2:
        block = bytes(buf[eol + 2 : end - 2])  # without the last CRLF
        lines = block.split(b"\r\n")
        if block.translate(None, _VALUE_BYTES) != _line_ends(len(lines) - 1):
            _check_lines(block, "header")
        for line in lines:
            name, sep, value = line.partition(b":")
            kind = _NAMES.get(name)
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
        raise _error(f"Content-Length {value[:50]!r} over the body limit of {MAX_BODY} bytes")
    return int(value)


# -- bodies -----------------------------------------------------------------------------


class ChunkedDecoder:
    """An incremental chunked-body decoder: fed the buffer, it takes what it can.

    :meth:`feed` reads ``buf[pos:]`` and returns the position it consumed up to; bytes it
    could not use yet (a partial size line) stay for the next call, with more appended.
    ``done`` tells when the last chunk and the trailers were read; :meth:`body` joins the data.
    """

    __slots__ = ("_parts", "_remaining", "_size", "_state", "done", "trailers")

    _SIZE = 0  # at a chunk-size line
    _DATA = 1  # inside a chunk's data (``_remaining`` bytes to go)
    _CRLF = 2  # after a chunk's data
    _TRAILER = 3  # after the last chunk

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._state = self._SIZE
        self._remaining = 0
        self._size = 0
        self.done = False
        self.trailers: list[tuple[bytes, bytes]] = []

    def feed(self, buf: bytes | bytearray, pos: int) -> int:
        end = len(buf)
        while pos < end:
            state = self._state
            if state == self._SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > MAX_HEAD:
                        raise _error("chunk size line too long")
                    if buf.find(b"\n", pos) >= 0:
                        raise _error(f"malformed chunk size line: {bytes(buf[pos:end])[:50]!r}")
                    return pos
                match = _CHUNK_LINE.fullmatch(buf, pos, eol)
                if match is None:
                    raise _error(f"malformed chunk size: {bytes(buf[pos:eol])[:50]!r}")
                size = int(match.group(1), 16)
                pos = eol + 2
                if size == 0:
                    self._state = self._TRAILER
                    continue
                self._size += size
                if self._size > MAX_BODY:
                    raise _error(f"chunked body over the limit of {MAX_BODY} bytes")
                self._remaining = size
                self._state = self._DATA
            elif state == self._DATA:
                take = min(self._remaining, end - pos)
                if take:
                    self._parts.append(bytes(buf[pos : pos + take]))
                    pos += take
                    self._remaining -= take
                if self._remaining:
                    return pos
                self._state = self._CRLF
            elif state == self._CRLF:
                if end - pos < 2:
                    if buf[pos : pos + 1] != b"\r":
                        raise _error("malformed chunked body: no CRLF after a chunk")
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise _error("malformed chunked body: no CRLF after a chunk")
                pos += 2
                self._state = self._SIZE
            else:  # the trailer section: an empty line at once, or header lines then one
                if buf[pos : pos + 2] == b"\r\n":
                    self.done = True
                    return pos + 2
                stop = buf.find(b"\r\n\r\n", pos)
                if stop < 0:
                    if end - pos > MAX_HEAD:
                        raise _error("trailers too long")
                    _check_partial_lines(buf, pos, "trailer")
                    return pos
                self.trailers = parse_fields(bytes(buf[pos : stop + 2]), "trailer")
                self.done = True
                return stop + 4
        return pos

    def body(self) -> bytes:
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _check_partial_lines(buf: bytes | bytearray, pos: int, what: str) -> None:
    """Fail now if the incomplete lines at ``buf[pos:]`` are already malformed (bare LF)."""
    if buf.count(b"\n", pos) != buf.count(b"\r\n", pos):
        raise _error(f"malformed {what}: a bare LF line ending")


class Answer(NamedTuple):
    """One response as read: the head's parts, the whole body, whether to reuse the conn."""

    status: int
    reason: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reusable: bool
    coded: bool  # a Content-Encoding to decode


_HEAD = 0
_LENGTH = 1
_CHUNKED = 2
_EOF = 3


class ResponseParser:
    """Reads one final response from the bytes of a connection, as they arrive.

    :meth:`feed` takes the next bytes read and returns the :class:`Answer` once it is
    complete, else None (feed more). At EOF, :meth:`feed_eof` returns the answer of a body
    that runs to EOF, or raises: the response is incomplete. ``no_body``: the request was a
    HEAD. The buffer is trimmed after each interim response and each decoded chunk; at most
    ``MAX_INTERIM`` interim responses, heads of ``MAX_HEAD`` bytes and a body of ``MAX_BODY``.
    """

    __slots__ = ("_buf", "_chunks", "_head", "_interim", "_length", "_no_body", "_pos", "_state")

    def __init__(self, no_body: bool) -> None:
        self._no_body = no_body
        self._buf: bytes | bytearray = b""
        self._pos = 0  # where the unread bytes start in _buf
        self._state = _HEAD
        self._interim = 0
        self._head: Head | None = None
        self._length = 0
        self._chunks: ChunkedDecoder | None = None

    def feed(self, data: bytes) -> Answer | None:
        buf = self._buf
        if len(buf) == self._pos:
            buf = data
            self._pos = 0
        else:
            if self._pos:
                buf = buf[self._pos :]
                self._pos = 0
            if isinstance(buf, bytes):
                buf = bytearray(buf)
            buf += data
        self._buf = buf
        state = self._state
        if state == _HEAD:
            return self._read_head()
        if state == _LENGTH:
            return self._read_length()
        if state == _CHUNKED:
            return self._read_chunked()
        if len(buf) > MAX_BODY:
            raise _error(f"body over the limit of {MAX_BODY} bytes")
        return None  # _EOF: read on

    @property
    def buffered(self) -> int:
        """Bytes held that are not consumed yet (a partial head, line or body)."""
        return len(self._buf) - self._pos

    def feed_eof(self) -> Answer:
        state = self._state
        if state == _EOF:
            head = self._head
            assert head is not None
            body = bytes(self._buf[self._pos :])
            return Answer(
                head.status, head.reason, head.version, head.headers, body, False, head.coded
            )
        if state == _HEAD:
            if len(self._buf) == self._pos and not self._interim:
                raise _error(NO_RESPONSE)
            raise _error(f"{NO_RESPONSE[:-1]} in full: the head was cut short.")
        if state == _LENGTH:
            received = len(self._buf) - self._pos
            raise _error(f"{_EOF_BODY}: received {received} bytes, expected {self._length}")
        raise _error(f"{_EOF_BODY}: incomplete chunked")

    def _read_head(self) -> Answer | None:
        while True:
            buf, start = self._buf, self._pos
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if len(buf) - start > MAX_HEAD:
                    raise _error("response headers too long")
                _check_partial_lines(buf, start, "response head")
                if buf[start : start + 1] not in (b"H", b"") or (
                    len(buf) - start >= 5 and buf[start : start + 5] != b"HTTP/"
                ):
                    raise _error(f"malformed status line: {bytes(buf[start : start + 50])!r}")
                return None
            head = parse_head(buf, start, end + 2)
            self._pos = start = end + 4
            status = head.status
            if status >= 200:
                break
            if status == 101:
                raise _error("101 Switching Protocols is not supported")
            # An interim (1xx) response: drop it, the final one follows.
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise _error(f"more than {MAX_INTERIM} interim (1xx) responses")
            self._buf = buf[start:]
            self._pos = 0
        self._head = head
        if self._no_body or status == 204 or status == 304:
            return self._answer(b"", start)
        if head.chunked:
            self._chunks = ChunkedDecoder()
            self._state = _CHUNKED
            return self._read_chunked()
        length = head.length
        if length >= 0:
            if length > MAX_BODY:
                raise _error(f"Content-Length {length} over the body limit of {MAX_BODY} bytes")
            end = start + length
            if len(buf) >= end:  # the common case, inline: the whole body is here
                reusable = head.keep_alive and len(buf) == end
                answer = (status, head.reason, head.version, head.headers, buf[start:end])
                return _new(Answer, (*answer, reusable, head.coded))
            self._length = length
            self._state = _LENGTH
            return None
        self._state = _EOF  # neither: the body runs to EOF, and the connection ends with it
        return None

    def _read_length(self) -> Answer | None:
        buf, start = self._buf, self._pos
        end = start + self._length
        if len(buf) < end:
            return None
        return self._answer(bytes(buf[start:end]), end)

    def _read_chunked(self) -> Answer | None:
        chunks = self._chunks
        assert chunks is not None
        self._pos = pos = chunks.feed(self._buf, self._pos)
        if not chunks.done:
            return None
        return self._answer(chunks.body(), pos)

    def _answer(self, body: bytes, end: int) -> Answer:
        head = self._head
        assert head is not None
        reusable = head.keep_alive and len(self._buf) == end
        answer = (head.status, head.reason, head.version, head.headers, body, reusable, head.coded)
        return _new(Answer, answer)
