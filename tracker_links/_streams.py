"""Streaming helpers of the bulk engines: read any input lazily, and yield from a task group.

:class:`Stream` is what ``create_many``, ``get_many`` and ``queue_links`` return: an async
iterator that is also an async context manager, so leaving the loop early is clean without
``contextlib.aclosing``::

    async with client.links.create_many(specs) as outcomes:
        async for outcome in outcomes:
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectSendStream

__all__ = ["Stream", "length", "reading", "stream"]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def reading(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate sync or async input; an async generator left unfinished is closed on exit."""
    if isinstance(items, AsyncIterable):
        iterator = aiter(items)
        try:
            yield iterator
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
    else:

        async def from_sync() -> AsyncIterator[T]:
            for item in items:
                yield item

        yield from_sync()


def length(items: object) -> int | None:
    """``len(items)`` when the input has one (a list), else ``None`` (a generator)."""
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


class Stream(Generic[T], AsyncIterator[T]):
    """Results as they come: ``async for`` it, ideally inside ``async with`` it.

    The work runs in a task group that lives while the stream is iterated. ``async with``
    (or ``contextlib.aclosing``) ends that work when the block is left, however it is left
    (``break``, an exception, a cancellation); iterated to the end, it ends by itself.
    """

    __slots__ = ("_gen",)

    def __init__(self, gen: AsyncGenerator[T, None]) -> None:
        self._gen = gen

    def __aiter__(self) -> AsyncIterator[T]:
        return self._gen  # ``async for`` drives the generator itself: no layer per item

    async def __anext__(self) -> T:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the work still running and release what it holds."""
        await self._gen.aclose()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._gen.aclose()


def stream(produce: Callable[[ObjectSendStream[T]], Awaitable[None]], buffer: int) -> Stream[T]:
    """Run ``produce`` in a task group; the :class:`Stream` yields what it sends, as it sends it."""
    return Stream(_run(produce, buffer))


async def _run(
    produce: Callable[[ObjectSendStream[T]], Awaitable[None]], buffer: int
) -> AsyncGenerator[T, None]:
    send, receive = anyio.create_memory_object_stream[T](buffer)
    failed: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def producer() -> None:
            async with send:
                try:
                    await produce(send)
                except Exception as exc:  # raised below as it is, not in an exception group
                    failed.append(exc)

        tg.start_soon(producer)
        async with receive:
            async for item in receive:
                try:
                    yield item
                except GeneratorExit:
                    # Closed early (``async with`` or ``aclosing`` + ``break``): stop the work.
                    tg.cancel_scope.cancel()
                    return
    if failed:
        raise failed[0]
