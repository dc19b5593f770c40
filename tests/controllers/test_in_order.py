"""InOrder: the steps of one object in the order they came, a bounded number at once."""

from __future__ import annotations

import asyncio

import pytest

from finops_operator.controllers.in_order import InOrder, Step


async def test_the_steps_of_one_object_run_one_after_the_other_in_order() -> None:
    order = InOrder(limit=10)
    gate = asyncio.Event()
    ran: list[str] = []

    def step(name: str, wait: bool = False) -> Step:
        async def run() -> None:
            ran.append(f"{name} starts")
            if wait:
                await gate.wait()
            ran.append(f"{name} ends")

        return run

    await order.submit(("team-a", "x"), step("first", wait=True))
    await order.submit(("team-a", "x"), step("second"))
    await order.submit(("team-a", "x"), step("third"))
    await order.submit(("team-a", "y"), step("other"))
    await asyncio.sleep(0.01)
    assert ran == ["first starts", "other starts", "other ends"]  # y is not held back by x
    assert order.busy(("team-a", "x")) and not order.busy(("team-a", "y"))
    gate.set()
    await order.idle()
    assert ran[3:] == ["first ends", "second starts", "second ends", "third starts", "third ends"]
    assert order.turns == {}  # nothing kept once an object's steps are done


async def test_no_more_than_limit_steps_are_under_way_and_submit_waits_for_a_slot() -> None:
    order = InOrder(limit=2)
    gate = asyncio.Event()
    running = 0
    most = 0

    async def step() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    await order.submit(("ns", "a"), step)
    await order.submit(("ns", "b"), step)
    third = asyncio.create_task(order.submit(("ns", "c"), step))
    await asyncio.sleep(0.01)
    assert not third.done()  # the watch waits: no third body piles up
    gate.set()
    await third
    await order.idle()
    assert most == 2


async def test_a_failing_step_is_logged_and_the_next_of_its_object_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = InOrder(limit=1, what="Audit of Pod")
    ran: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def works() -> None:
        ran.append("next")

    await order.submit(("team-a", "p"), fails)
    await order.submit(("team-a", "p"), works)  # the slot of the failed step came back
    await order.idle()
    assert ran == ["next"]
    assert "Audit of Pod team-a/p failed" in caplog.text
    assert order.turns == {}
