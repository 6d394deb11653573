"""The concurrency limiter: never more than ``total`` holders, FIFO, and no slot lost."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tracker_links._transport import Slots

pytestmark = pytest.mark.anyio


async def test_never_more_than_total_and_everyone_served() -> None:
    slots = Slots(3)
    holding = peak = 0
    arrived: list[int] = []
    order: list[int] = []

    async def worker(i: int) -> None:
        nonlocal holding, peak
        arrived.append(i)
        async with slots:
            order.append(i)
            holding += 1
            peak = max(peak, holding)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            holding -= 1

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(worker, i)
            await anyio.lowlevel.checkpoint()  # start them in order
    assert peak == 3
    assert sorted(order) == sorted(arrived) == list(range(20))
    assert slots._free == 3


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire()
    with anyio.move_on_after(0):
        await slots.acquire()
    assert not slots._waiters
    slots.release()
    assert slots._free == 1


async def test_a_slot_handed_to_a_cancelled_waiter_is_not_lost() -> None:
    slots = Slots(1)
    await slots.acquire()
    got: list[str] = []

    async def waiter(name: str, scope_out: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_out.append(scope)
            await slots.acquire()
            got.append(name)
            slots.release()

    first: list[anyio.CancelScope] = []
    second: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "first", first)
        tg.start_soon(waiter, "second", second)
        await anyio.wait_all_tasks_blocked()
        slots.release()  # hands the slot to "first"...
        first[0].cancel()  # ...which is cancelled before it resumes
    # Whether the hand-over or the cancellation wins, the slot is not lost: "second" gets it.
    assert got in (["second"], ["first", "second"])
    assert slots._free == 1
    assert not slots._waiters
