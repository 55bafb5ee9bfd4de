"""Answers shared by the triggers of one event loop (one triggerer process)."""

from __future__ import annotations

import asyncio

import pytest

from callfilter.sharing import SharedAnswers, shared_answers


def test_callers_asking_at_once_share_one_request_and_a_recent_answer_is_reused():
    asked = []

    async def ask() -> int:
        asked.append(1)
        await asyncio.sleep(0.05)
        return len(asked)

    async def main() -> None:
        shared = SharedAnswers()
        assert await asyncio.gather(*(shared.get("k", 0, ask) for _ in range(10))) == [1] * 10
        assert await shared.get("k", 60, ask) == 1  # young enough
        assert await shared.get("k", 0, ask) == 2  # too old for this caller
        assert await shared.get("other", 60, ask) == 3

    asyncio.run(main())


def test_a_failure_reaches_every_caller_of_that_request_and_is_not_kept():
    async def fail() -> int:
        await asyncio.sleep(0.05)
        raise TimeoutError("vendor away")

    async def main() -> None:
        shared = SharedAnswers()
        answers = await asyncio.gather(*(shared.get("k", 60, fail) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(a, TimeoutError) for a in answers)
        assert await shared.get("k", 60, lambda: asyncio.sleep(0, 7)) == 7

    asyncio.run(main())


def test_when_the_asking_caller_is_cancelled_the_others_get_an_error_to_retry_on():
    async def main() -> None:
        shared = SharedAnswers()
        asking = asyncio.create_task(shared.get("k", 0, lambda: asyncio.sleep(10), lambda: OSError("again")))
        await asyncio.sleep(0)
        joined = asyncio.create_task(shared.get("k", 0, lambda: asyncio.sleep(0, 1)))
        await asyncio.sleep(0.01)
        asking.cancel()
        with pytest.raises(OSError, match="again"):
            await joined
        assert await shared.get("k", 0, lambda: asyncio.sleep(0, 2)) == 2

    asyncio.run(main())


def test_each_event_loop_has_its_own_answers():
    asked = []

    async def ask() -> int:
        asked.append(1)
        return len(asked)

    async def twice() -> tuple[int, int]:
        assert shared_answers("x") is shared_answers("x")
        return await shared_answers("x").get("k", 3600, ask), await shared_answers("x").get("k", 3600, ask)

    assert asyncio.run(twice()) == (1, 1)
    assert asyncio.run(twice()) == (2, 2)  # another loop (a restarted triggerer) asks again
