"""Serving the fake over real loopback HTTP with uvicorn (the ``fake`` extra).

Imported only by :meth:`FakeTracker.serve` and :meth:`FakeTracker.serve_forever`, so the
library itself never needs uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from ._app import FakeASGIApp, quiet_intentional_drops

try:
    import uvicorn
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "serving the fake Tracker over HTTP needs uvicorn: pip install 'tracker-links[fake]'"
    ) from exc

__all__ = ["serve_blocking", "serve_in_thread"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, waking at once when told to stop (instead of polling every 0.1 s)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], object]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        self._on_ready()
        while not should_exit:
            # on_tick refreshes the Date header when counter % 10 == 0: once per wake-up.
            counter = (counter + 10) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._wake_up()

    def stop(self) -> None:
        """Ask the server to shut down (from any thread)."""
        self.should_exit = True
        self._wake_up()

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when their
    # proto says TCP; without it, Nagle + delayed ACKs cost ~40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: FakeASGIApp, host: str, port: int) -> uvicorn.Config:
    quiet_intentional_drops()
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": http,
        "ws": "none",
        "lifespan": "off",
        "interface": "asgi3",
        "log_config": None,  # leave the process's logging configuration alone
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "backlog": 4096,
        "timeout_keep_alive": 60,
        "timeout_graceful_shutdown": 5,
    }
    return uvicorn.Config(app, **kwargs)


@contextlib.contextmanager
def serve_in_thread(app: FakeASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the fake's app under uvicorn in a daemon thread with its own loop; yield its URL."""
    config = _config(app, host, port)
    sock = _bind(host, port, config.backlog)
    ready = threading.Event()
    server = _Server(config, ready.set)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name=f"fake-tracker {_url(sock)}", daemon=True)
    thread.start()
    try:
        ready.wait(_START_TIMEOUT)
        if not server.started or not thread.is_alive():
            raise RuntimeError("the fake Tracker's server did not start") from (
                failure[0] if failure else None
            )
        yield _url(sock)
    finally:
        server.stop()
        thread.join(_STOP_TIMEOUT)
        sock.close()


class _Terminated(Exception):
    pass


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def serve_blocking(
    app: FakeASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Run the fake's app under uvicorn in this thread until SIGINT/SIGTERM (or Ctrl+C)."""
    config = _config(app, host, port)
    sock = _bind(host, port, config.backlog)
    url = _url(sock)
    server = _Server(config, (lambda: on_ready(url)) if on_ready is not None else (lambda: None))
    main = threading.current_thread() is threading.main_thread()
    # uvicorn re-raises the signal that stopped it once it has shut down: catch SIGTERM's
    # (SIGINT's arrives as KeyboardInterrupt) so that this function simply returns.
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
