"""Sans-I/O response framing: one whole response read from bytes fed as they arrive.

- :class:`ChunkedDecoder` decodes a chunked body incrementally, fed bytes;
- :class:`ResponseParser` reads one final response: interim (1xx) responses skipped, the head
  (:func:`tracker_links._wire.parse_head`), then the body by its framing (none,
  ``Content-Length``, chunked, or up to EOF), within bounded sizes.

No awaits: :mod:`tracker_links._http11` feeds it what it reads from the network.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from . import _wire
from ._wire import Head, error, parse_fields, parse_head

__all__ = ["MAX_HEAD", "MAX_INTERIM", "NO_RESPONSE", "Answer", "ChunkedDecoder", "ResponseParser"]

MAX_HEAD: Final = 65536  # bytes of status line + headers (or of trailers, or a chunk-size line)
MAX_INTERIM: Final = 100  # 1xx responses before the final one
_MAX_SIZE_LINE: Final = 4096  # bytes of a chunk-size line (with its extensions)
NO_RESPONSE: Final = "Server disconnected without sending a response."
_EOF_BODY: Final = "peer closed connection without sending complete message body"
_CHUNK_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?")
_new: Final = tuple.__new__  # a NamedTuple without its Python-level __new__ (hot path)


class ChunkedDecoder:
    """An incremental chunked-body decoder: fed the buffer, it takes what it can.

    :meth:`feed` reads ``buf[pos:]`` and returns the position it consumed up to; bytes it
    could not use yet (a partial size line) stay for the next call, with more appended.
    ``done`` tells when the last chunk and the trailers were read; :meth:`body` joins the data.
    """

    __slots__ = ("_parts", "_remaining", "_seen", "_size", "_state", "done", "trailers")

    _SIZE = 0  # at a chunk-size line
    _DATA = 1  # inside a chunk's data (``_remaining`` bytes to go)
    _CRLF = 2  # after a chunk's data
    _TRAILER = 3  # after the last chunk

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._state = self._SIZE
        self._remaining = 0
        self._size = 0
        self._seen = 0
        self.done = False
        self.trailers: list[tuple[bytes, bytes]] = []

    def feed(self, buf: bytes | bytearray, pos: int) -> int:
        end = len(buf)
        while pos < end:
            state = self._state
            if state == self._SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > _MAX_SIZE_LINE:
                        raise error("chunk size line too long")
                    if buf.find(b"\n", pos) >= 0:
                        raise error(f"malformed chunk size line: {bytes(buf[pos:end])[:50]!r}")
                    return pos
                match = _CHUNK_LINE.fullmatch(buf, pos, eol)
                if match is None:
                    raise error(f"malformed chunk size: {bytes(buf[pos:eol])[:50]!r}")
                size = int(match.group(1), 16)
                pos = eol + 2
                if size == 0:
                    self._state = self._TRAILER
                    continue
                self._size += size
                if self._size > _wire.MAX_BODY:
                    raise error(f"chunked body over the limit of {_wire.MAX_BODY} bytes")
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
                        raise error("malformed chunked body: no CRLF after a chunk")
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise error("malformed chunked body: no CRLF after a chunk")
                pos += 2
                self._state = self._SIZE
            else:  # the trailer section: an empty line at once, or header lines then one
                if buf[pos : pos + 2] == b"\r\n":
                    self.done = True
                    return pos + 2
                seen = self._seen  # bytes of the trailers searched by an earlier call
                stop = buf.find(b"\r\n\r\n", pos + max(seen - 3, 0))
                if stop < 0:
                    if end - pos > MAX_HEAD:
                        raise error("trailers too long")
                    _check_partial_lines(buf, pos, pos + seen, "trailer")
                    self._seen = end - pos
                    return pos
                self.trailers = parse_fields(bytes(buf[pos : stop + 2]), "trailer")
                self.done = True
                return stop + 4
        return pos

    def body(self) -> bytes:
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _check_partial_lines(buf: bytes | bytearray, start: int, new: int, what: str) -> None:
    """Fail now if the incomplete lines at ``buf[start:]`` are already malformed (a bare LF).

    Only the LFs from ``new`` on are looked at: those before were checked by an earlier call.
    """
    if buf.count(b"\n", new) != buf.count(b"\r\n", max(new - 1, start)):
        raise error(f"malformed {what}: a bare LF line ending")


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
    ``MAX_INTERIM`` interim responses, heads of ``MAX_HEAD`` bytes and a body of ``_wire.MAX_BODY``.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_head",
        "_interim",
        "_length",
        "_no_body",
        "_pos",
        "_seen",
        "_state",
    )

    def __init__(self, no_body: bool) -> None:
        self._no_body = no_body
        self._buf: bytes | bytearray = b""
        self._pos = 0  # where the unread bytes start in _buf
        self._seen = 0  # bytes after _pos already searched for the end of the head
        self._state = _HEAD
        self._interim = 0
        # Set when the state needs them: _head (after the head), _length, _chunks.
        self._head: Head
        self._length: int
        self._chunks: ChunkedDecoder

    def feed(self, data: bytes) -> Answer | None:
        buf = self._buf
        if not buf and self._state == _HEAD:  # the first bytes (the common case: all of it)
            self._buf = data
            return self._read_head()
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
        if len(buf) > _wire.MAX_BODY:
            raise error(f"body over the limit of {_wire.MAX_BODY} bytes")
        return None  # _EOF: read on

    @property
    def buffered(self) -> int:
        """Bytes held that are not consumed yet (a partial head, line or body)."""
        return len(self._buf) - self._pos

    def feed_eof(self) -> Answer:
        state = self._state
        if state == _EOF:
            head = self._head
            body = bytes(self._buf[self._pos :])
            return Answer(
                head.status, head.reason, head.version, head.headers, body, False, head.coded
            )
        if state == _HEAD:
            if len(self._buf) == self._pos and not self._interim:
                raise error(NO_RESPONSE)
            raise error(f"{NO_RESPONSE[:-1]} in full: the head was cut short.")
        if state == _LENGTH:
            received = len(self._buf) - self._pos
            raise error(f"{_EOF_BODY}: received {received} bytes, expected {self._length}")
        raise error(f"{_EOF_BODY}: incomplete chunked")

    def _read_head(self) -> Answer | None:
        while True:
            buf, start = self._buf, self._pos
            seen = self._seen  # bytes of this head searched by an earlier call
            end = buf.find(b"\r\n\r\n", start + seen - 3 if seen > 3 else start)
            if end < 0:
                if len(buf) - start > MAX_HEAD:
                    raise error("response headers too long")
                _check_partial_lines(buf, start, start + seen, "response head")
                self._seen = len(buf) - start
                if buf[start : start + 1] not in (b"H", b"") or (
                    len(buf) - start >= 5 and buf[start : start + 5] != b"HTTP/"
                ):
                    raise error(f"malformed status line: {bytes(buf[start : start + 50])!r}")
                return None
            head = parse_head(buf, start, end + 2)
            self._pos = start = end + 4
            self._seen = 0
            status = head.status
            if status >= 200:
                break
            if status == 101:
                raise error("101 Switching Protocols is not supported")
            # An interim (1xx) response: drop it, the final one follows.
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise error(f"more than {MAX_INTERIM} interim (1xx) responses")
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
            if length > _wire.MAX_BODY:
                limit = _wire.MAX_BODY
                raise error(f"Content-Length {length} over the body limit of {limit} bytes")
            end = start + length
            if len(buf) >= end:  # the common case, inline: the whole body is here
                reusable = head.keep_alive and len(buf) == end
                body = buf[start:end]
                if type(body) is not bytes:  # the head came in pieces: a bytearray
                    body = bytes(body)
                return _new(
                    Answer,
                    (status, head.reason, head.version, head.headers, body, reusable, head.coded),
                )
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
        self._pos = pos = chunks.feed(self._buf, self._pos)
        if not chunks.done:
            return None
        return self._answer(chunks.body(), pos)

    def _answer(self, body: bytes, end: int) -> Answer:
        head = self._head
        reusable = head.keep_alive and len(self._buf) == end
        answer = (head.status, head.reason, head.version, head.headers, body, reusable, head.coded)
        return _new(Answer, answer)
