"""A Dapr actor service written with the official Dapr Python SDK (FastAPI + `DaprActor`),
served by the sidecar's HTTP app channel: Rookery (or daprd) reads `GET /dapr/config` and
calls `PUT /actors/Counter/{id}/method/...` and `DELETE /actors/Counter/{id}`.

One actor type, `Counter`, with its state in the sidecar's actor state store
(`self._state_manager`):

- `count`: `Increment`, `Get`, `Set`;
- `reminder_count`: bumped by each firing of the reminder `bump` (`StartReminder`/`StopReminder`);
- `timer_count`: bumped by each firing of the timer `tick` (`StartTimer`/`StopTimer`);
- `activations`: bumped by each `_on_activate`.

Each activation and deactivation is also printed to stdout (`ACTIVATED Counter/c1`,
`DEACTIVATED Counter/c1`), so whoever runs the service can see idle deactivation: the sidecar
sent `DELETE /actors/Counter/c1`. `Fail` raises, for the error path.

Run it (see README.md): `uvicorn counter_service:app --port 3000` with the sidecar's HTTP
port in `DAPR_HTTP_PORT` (default 3500). The idle timeout is `COUNTER_IDLE_TIMEOUT_SECONDS`
(default 4 s: short, so that idle deactivation is quick to see).
"""

import os
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Optional

from fastapi import FastAPI

from dapr.actor import Actor, ActorRuntime, Remindable
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.ext.fastapi import DaprActor

from counter_interface import CounterInterface

IDLE_TIMEOUT = timedelta(seconds=float(os.environ.get('COUNTER_IDLE_TIMEOUT_SECONDS', '4')))
REMINDER = 'bump'
TIMER = 'tick'


def log(line: str) -> None:
    """One line on stdout, flushed at once (a test reads the process log)."""
    print(line, flush=True)


class Counter(Actor, CounterInterface, Remindable):  # Remindable must be a direct base
    """The actor; its id is `self.id`."""

    def _name(self) -> str:
        return f'Counter/{self.id.id}'

    async def _counter(self, key: str) -> int:
        found, value = await self._state_manager.try_get_state(key)
        return value if found else 0

    async def _bump(self, key: str, by: int = 1) -> int:
        value = await self._counter(key) + by
        await self._state_manager.set_state(key, value)
        return value

    async def _on_activate(self) -> None:
        # Saved by the SDK right after this returns, in one state transaction.
        activations = await self._bump('activations')
        log(f'ACTIVATED {self._name()} activations={activations}')

    async def _on_deactivate(self) -> None:
        # The SDK does not save state changes made here; printing is how it is seen.
        log(f'DEACTIVATED {self._name()}')

    async def increment(self, amount: int) -> int:
        return await self._bump('count', amount)

    async def get(self) -> int:
        return await self._counter('count')

    async def set(self, value: int) -> int:
        await self._state_manager.set_state('count', value)
        return value

    async def get_counts(self) -> dict:
        return {
            key: await self._counter(key)
            for key in ('count', 'reminder_count', 'timer_count', 'activations')
        }

    async def start_reminder(self, period_ms: int) -> None:
        period = timedelta(milliseconds=period_ms)
        await self.register_reminder(REMINDER, b'reminder-state', period, period)
        log(f'REMINDER REGISTERED {self._name()} period_ms={period_ms}')

    async def stop_reminder(self) -> None:
        await self.unregister_reminder(REMINDER)
        log(f'REMINDER UNREGISTERED {self._name()}')

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: Optional[timedelta] = None,
    ) -> None:
        if name != REMINDER or state != b'reminder-state':
            raise ValueError(f'unexpected reminder {name!r} with state {state!r}')
        fired = await self._bump('reminder_count')
        log(f'REMINDER {self._name()} {name} fired={fired}')

    async def start_timer(self, period_ms: int) -> None:
        period = timedelta(milliseconds=period_ms)
        await self.register_timer(TIMER, self.on_tick, {'by': 1}, period, period)
        log(f'TIMER REGISTERED {self._name()} period_ms={period_ms}')

    async def stop_timer(self) -> None:
        await self.unregister_timer(TIMER)
        log(f'TIMER UNREGISTERED {self._name()}')

    async def on_tick(self, data) -> None:
        """The timer's callback: gets the timer's JSON `data` back."""
        fired = await self._bump('timer_count', data['by'])
        log(f'TIMER {self._name()} {TIMER} fired={fired}')

    async def fail(self) -> None:
        raise RuntimeError(f'Fail was called on {self._name()}')


ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=IDLE_TIMEOUT))


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Waits for the sidecar (GET /v1.0/healthz/outbound) before the app serves anything.
    await actor.register_actor(Counter)
    log('REGISTERED Counter')
    yield


app = FastAPI(title='Counter actor service', lifespan=lifespan)
actor = DaprActor(app)
