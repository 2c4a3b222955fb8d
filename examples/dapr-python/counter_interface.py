"""The Counter actor's interface, shared by the service (counter_service.py) and the client
(client.py): the method names on the wire are the `@actormethod` names.

Written only against the official Dapr Python SDK's public API (`dapr.actor`).
"""

from dapr.actor import ActorInterface, actormethod


class CounterInterface(ActorInterface):
    @actormethod(name='Increment')
    async def increment(self, amount: int) -> int:
        """Adds `amount` to `count` and returns the new value."""
        ...

    @actormethod(name='Get')
    async def get(self) -> int:
        """The current `count`."""
        ...

    @actormethod(name='Set')
    async def set(self, value: int) -> int:
        """Sets `count` to `value` and returns it."""
        ...

    @actormethod(name='GetCounts')
    async def get_counts(self) -> dict:
        """`count`, `reminder_count`, `timer_count` and `activations`, as one object."""
        ...

    @actormethod(name='StartReminder')
    async def start_reminder(self, period_ms: int) -> None:
        """Registers the reminder `bump`: first fire after one period, then every period."""
        ...

    @actormethod(name='StopReminder')
    async def stop_reminder(self) -> None:
        """Unregisters the reminder `bump`."""
        ...

    @actormethod(name='StartTimer')
    async def start_timer(self, period_ms: int) -> None:
        """Registers the timer `tick`: first fire after one period, then every period."""
        ...

    @actormethod(name='StopTimer')
    async def stop_timer(self) -> None:
        """Unregisters the timer `tick`."""
        ...

    @actormethod(name='Fail')
    async def fail(self) -> None:
        """Always raises: the error path of an actor method."""
        ...
