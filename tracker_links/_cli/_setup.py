"""The client of a command, from the command line and the environment; running it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import anyio
import attrs

from .._client import TrackerClient
from .._exceptions import InvalidInputError
from .._quota import quota_from_url
from ._errors import UsageError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEMO_CONCURRENCY",
    "Interrupt",
    "aclose",
    "interruptible",
    "make_client",
    "need_fake",
    "run",
    "secrets",
    "service_counts",
]

DEFAULT_CONCURRENCY: Final = 16
DEMO_CONCURRENCY: Final = 64
_TOKEN_VARS: Final = ("TRACKER_TOKEN", "TRACKER_IAM_TOKEN")
_ORG_VARS: Final = ("TRACKER_ORG_ID", "TRACKER_CLOUD_ORG_ID")


def secrets(argv: Sequence[str]) -> list[str]:
    """The tokens this run knows of: the environment's and any ``--token`` value."""
    found = [os.environ.get(name, "") for name in _TOKEN_VARS]
    for i, arg in enumerate(argv):
        if arg == "--token" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--token="):
            found.append(arg.partition("=")[2])
    # Longest first, so a token containing another is masked whole. Very short values are not
    # tokens (and masking them would garble ordinary text).
    return sorted({s.strip() for s in found if len(s.strip()) >= 8}, key=len, reverse=True)


class _QuotaClient(TrackerClient):
    """A client that enters its shared quota with itself (a ``RedisQuota`` must be entered
    before use) and leaves it after closing: the CLI's ``--quota``."""

    async def __aenter__(self) -> TrackerClient:
        enter = getattr(self.quota, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.aclose()
        finally:
            leave = getattr(self.quota, "__aexit__", None)
            if leave is not None:
                await leave(None, None, None)


def make_client(
    args: argparse.Namespace, *, concurrency: int = DEFAULT_CONCURRENCY
) -> TrackerClient:
    """A client from the environment and the command line; a missing credential is exit 2.

    Use it with ``async with``: with ``--quota`` that also opens (and closes) the quota."""
    env = os.environ
    overrides: dict[str, Any] = {
        "max_concurrency": args.concurrency or concurrency,
        "rate_limit": args.rate_limit,
        "timeout": args.timeout,
    }

    def exactly_one_set(names: Sequence[str], missing: str) -> None:
        given = [name for name in names if env.get(name)]
        if not given:
            raise UsageError(missing)
        if len(given) > 1:
            raise UsageError(f"both {' and '.join(given)} are set: keep only one of them")

    if args.token:
        overrides["token"] = args.token
    else:
        exactly_one_set(
            _TOKEN_VARS,
            "no credential: set TRACKER_TOKEN (an OAuth token) or TRACKER_IAM_TOKEN (an IAM "
            "token) in the environment",
        )
    if args.org_id and args.cloud_org_id:
        raise UsageError("give --org-id or --cloud-org-id, not both")
    if args.org_id:
        overrides["org_id"] = args.org_id
    elif args.cloud_org_id:
        overrides["cloud_org_id"] = args.cloud_org_id
    else:
        exactly_one_set(
            _ORG_VARS,
            "no organization: set TRACKER_ORG_ID (Yandex 360) or TRACKER_CLOUD_ORG_ID "
            "(Yandex Cloud), or pass --org-id / --cloud-org-id",
        )
    if args.base_url:
        overrides["base_url"] = args.base_url
    if args.ca_bundle:
        overrides["verify"] = args.ca_bundle
    if getattr(args, "api_version", None):
        overrides["api_version"] = args.api_version
    kind: type[TrackerClient] = TrackerClient
    try:
        if getattr(args, "quota", None):
            overrides["quota"] = quota_from_url(args.quota)
            kind = _QuotaClient
        return kind.from_env(**overrides)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None


def service_counts(client: TrackerClient) -> Callable[[], tuple[int, int, int]]:
    """Requests sent, retries and 429 answers of ``client`` so far, for the progress line."""
    counts = client._transport.counts  # the CLI is part of the library: it may look inside

    def read() -> tuple[int, int, int]:
        return counts.requests, counts.retries, counts.rate_limited

    return read


def run(fn: Callable[[], Any]) -> Any:
    """Run an async function on asyncio."""
    return anyio.run(fn, backend="asyncio")


async def aclose(iterator: object) -> None:
    """Close an async iterator, if it can be closed."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def need_fake() -> None:
    """Exit 2 with what to install when the fake Tracker cannot be served (no uvicorn)."""
    import importlib.util

    if importlib.util.find_spec("uvicorn") is None:
        raise UsageError(
            "serving the fake Tracker needs uvicorn: pip install 'tracker-links[fake]'"
        )


@attrs.define
class Interrupt:
    """Whether the block of :func:`interruptible` was stopped by Ctrl-C."""

    interrupted: bool = False


@contextlib.asynccontextmanager
async def interruptible() -> AsyncIterator[Interrupt]:
    """Ctrl-C (SIGINT) cancels the block instead of raising ``KeyboardInterrupt`` in it.

    The code after the block then runs as usual and can tell what was done; it finds
    ``.interrupted`` set. Outside the main thread (no signals there) this does nothing.
    """
    state = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    state.interrupted = True
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()
