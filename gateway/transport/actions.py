"""The one interpreter of the dispatcher's actions, shared by every transport.

Sends go through the transport's own `send`; a send that fails is reported back to the
dispatcher at once (its follow-up actions run in the same pass). Deliveries and failures settle
callers' futures, the failure mapped to its client error here (`gateway.errors.from_dispatch`).
Wake-ups arm one timer on the event loop. It runs on the loop thread only, so dispatcher calls
never interleave.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from gateway.dispatch.dispatcher import Action, Deliver, Dispatcher, Fail, Send, Wake
from gateway.errors import from_dispatch


class ActionRunner:
    """Carries out actions for one dispatcher: `send` (False when the peer is gone), settle, wake."""

    def __init__(self, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop, send: Callable[[Send], bool]) -> None:
        self.dispatcher = dispatcher
        self.loop = loop
        self._send = send
        # uvloop's call_at answers a plain Handle (no `when()`) for a time already past: keep the time here.
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0

    def now(self) -> float:
        """The loop's clock: the time every dispatcher call is given."""
        return self.loop.time()

    def apply(self, actions: Iterable[Action]) -> None:
        """Carry out `actions` and whatever the dispatcher answers to a failed send, in order."""
        todo = deque(actions)
        while todo:
            action = todo.popleft()
            if isinstance(action, Send):
                if not self._send(action):
                    todo.extend(self.dispatcher.on_send_failed(action.identity, action.msg, self.now()))
            elif isinstance(action, Wake):
                self._wake_at(action.at)
            else:
                settle(action)

    def cancel_timer(self) -> None:
        """Stop the batching-window timer (closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake_at(self, at: float) -> None:
        """One timer, at the earliest window end asked for; `wake` re-asks for any later one."""
        if self._timer is not None and not self._timer.cancelled() and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(at, self._on_timer)
        self._timer_at = at

    def _on_timer(self) -> None:
        self._timer = None
        self.apply(self.dispatcher.wake(self.now()))


def settle(action: Deliver | Fail) -> None:
    """Resolve or fail callers that are still waiting."""
    if isinstance(action, Deliver):
        if not action.item.future.done():
            action.item.future.set_result(action.result)
        return
    error = from_dispatch(action.failure)
    for item in action.items:
        if not item.future.done():
            item.future.set_exception(error)
