"""The keep-alive pool of one origin: idle connections (LIFO), a cap, a FIFO of waiters.

It hands out connections and slots and takes them back; it opens nothing itself (the
transport in :mod:`tracker_links._http11` connects a slot it was given) and reads or writes
nothing but the liveness poll of an idle socket.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio
import httpx
from anyio.abc import ByteStream

__all__ = ["Conn", "Pool"]

_HAS_POLL: Final = hasattr(select, "poll")


class Conn:
    """One connection: its stream, the raw socket (to poll while idle), when it went idle."""

    __slots__ = ("closed", "idle_since", "sock", "stream")

    def __init__(self, stream: ByteStream | None, sock: socket.socket | None) -> None:
        self.stream = stream
        self.sock = sock
        self.idle_since = 0.0
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        stream = self.stream
        if stream is None:
            return
        with contextlib.suppress(Exception):  # a broken connection may fail to close: gone
            await stream.aclose()


class _Waiter:
    """A request waiting for a connection: ``granted`` once handed one (or a slot to open)."""

    __slots__ = ("conn", "event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.conn: Conn | None = None
        self.granted = False


def _is_dead(sock: socket.socket | None) -> bool:
    """Whether an idle connection's socket has something to read: EOF, a reset or junk.

    The server closing an idle connection is the common case (its keep-alive timeout); reusing
    it would fail the next request with an error that cannot prove the request unsent.
    """
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if _HAS_POLL:  # poll(), unlike select(), takes descriptors >= FD_SETSIZE
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select((fd,), (), (), 0)[0])
    except (OSError, ValueError):
        return True


_CLOSED: Final = "this FastTransport was closed"


class Pool:
    """The connections to one origin. ``count`` includes idle, busy and opening ones.

    An idle connection older than ``keepalive_expiry`` seconds (by ``clock``), or readable
    while idle (the server closed it), is closed instead of handed out.
    """

    __slots__ = (
        "clock",
        "closed",
        "conns",
        "count",
        "free",
        "host",
        "keepalive_expiry",
        "port",
        "size",
        "stale",
        "tls",
        "waiters",
    )

    def __init__(
        self,
        host: str,
        port: int,
        tls: bool,
        *,
        size: int,
        keepalive_expiry: float,
        clock: Callable[[], float],
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.size = size
        self.keepalive_expiry = keepalive_expiry
        self.clock = clock
        self.free: list[Conn] = []  # idle, LIFO: the newest on top
        self.conns: set[Conn] = set()  # all open ones, for aclose()
        self.count = 0
        self.waiters: deque[_Waiter] = deque()
        self.stale: list[Conn] = []  # idle ones found expired or dead, to close
        self.closed = False

    def take(self) -> Conn | None:
        """An idle live connection, a new unconnected one (a slot taken), or None: all busy.

        Idle connections found expired or dead go to ``stale``, for :meth:`close_stale`.
        """
        free = self.free
        if free:
            now = self.clock()
            expiry = self.keepalive_expiry
            while free:
                conn = free.pop()
                if now - conn.idle_since < expiry:
                    if not _is_dead(conn.sock):
                        return conn
                    stale = [conn]
                else:  # expired, and all below it on the stack are older still
                    stale = [conn, *free]
                    free.clear()
                for conn in stale:
                    conn.closed = True
                    self.conns.discard(conn)
                self.count -= len(stale)
                self.stale += stale
        if self.closed:
            raise RuntimeError(_CLOSED)
        if self.count < self.size:
            self.count += 1
            return Conn(None, None)  # to be connected
        return None

    async def close_stale(self) -> None:
        stale = self.stale[:]
        self.stale.clear()
        with anyio.CancelScope(shield=True):
            for conn in stale:
                await conn.close()

    async def wait(self, limit: float | None) -> Conn:
        """Wait until a connection (or a slot to open one) is handed over, or time out."""
        waiter = _Waiter()
        self.waiters.append(waiter)
        try:
            with anyio.move_on_after(math.inf if limit is None else limit):
                await waiter.event.wait()
        except BaseException:
            self._abandon(waiter)
            raise
        if not waiter.granted:
            self._abandon(waiter)
            if self.closed:
                raise RuntimeError(_CLOSED)
            raise httpx.PoolTimeout("timed out waiting for a free connection")
        conn = waiter.conn
        return conn if conn is not None else Conn(None, None)

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter gives up: pass on what it was granted, or leave the queue."""
        if waiter.granted:
            if waiter.conn is not None:
                self.put(waiter.conn)
            else:
                self.free_slot()
        else:
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)

    def connected(self, conn: Conn) -> None:
        """``conn`` (from a slot) now has a stream: count it for :meth:`aclose`."""
        self.conns.add(conn)

    def put(self, conn: Conn) -> None:
        """Return a healthy idle connection: to the first waiter, or on top of the free list."""
        waiters = self.waiters
        if waiters:
            waiter = waiters.popleft()
            waiter.conn = conn
            waiter.granted = True
            waiter.event.set()
        else:
            conn.idle_since = self.clock()
            self.free.append(conn)

    def free_slot(self) -> None:
        """A connection is gone: let the first waiter open one instead, or shrink the count."""
        waiters = self.waiters
        if waiters and not self.closed:
            waiter = waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            self.count -= 1

    async def discard(self, conn: Conn) -> None:
        """Close a connection that failed or may not be reused, and free its slot."""
        self.conns.discard(conn)
        self.free_slot()
        if conn.stream is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def aclose(self) -> None:
        """Close every connection; waiters wake up and raise that the transport is closed."""
        self.closed = True
        with anyio.CancelScope(shield=True):
            waiters = list(self.waiters)
            self.waiters.clear()
            for waiter in waiters:
                waiter.event.set()  # not granted: they raise that the transport is closed
            conns = list(self.conns)
            self.conns.clear()
            self.count -= len(self.free)
            self.free.clear()
            for conn in conns:
                await conn.close()
