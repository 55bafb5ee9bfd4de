"""Answers shared by the triggers of one triggerer process: they all run in its one event loop.

A thousand sends waiting for a vendor slot ask the same questions (the held slots, the status of the held
vendor tasks) every poll. `SharedAnswers.get` asks once for everyone asking at that moment, and hands an
answer younger than the caller's `max_age` to the next ones, so the vendor and the database see about one
question per poll interval instead of one per waiting send.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()


def loop_state(name: str, make: Callable[[], Any]) -> Any:
    """This event loop's (this triggerer process's) state called `name`, made by `make` the first time."""
    state = _by_loop.setdefault(asyncio.get_running_loop(), {})
    if name not in state:
        state[name] = make()
    return state[name]


class SharedAnswers:
    """The last answer to each question, and the question being asked now, of one event loop."""

    def __init__(self) -> None:
        self.answers: dict[Hashable, tuple[float, Any]] = {}
        self.in_flight: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(
        self,
        key: Hashable,
        max_age: float,
        ask: Callable[[], Awaitable[Any]],
        cancelled: Callable[[], Exception] = lambda: ConnectionError("the request was cancelled"),
    ) -> Any:
        """The answer to `key`: the one being asked for now, else one at most `max_age` s old, else `ask()`'s.
        A failure reaches every caller waiting on that request and is not kept; when the caller that asks is
        cancelled, the others get `cancelled()`."""
        pending = self.in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        known = self.answers.get(key)
        if known is not None and time.monotonic() - known[0] <= max_age:
            return known[1]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved" noise
        self.in_flight[key] = future
        try:
            answer = await ask()
        except asyncio.CancelledError:
            # This caller was stopped; those waiting on it get an error and ask again at their next poll.
            future.set_exception(cancelled())
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        else:
            self.answers[key] = (time.monotonic(), answer)
            future.set_result(answer)
            return answer
        finally:
            self.in_flight.pop(key, None)


def shared_answers(name: str) -> SharedAnswers:
    """The `SharedAnswers` called `name` of the running event loop."""
    return loop_state(name, SharedAnswers)
