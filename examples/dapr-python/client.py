"""A command-line client of the Counter actor service, written with the official Dapr Python
SDK's `ActorProxy`/`ActorId`: it runs one step against the sidecar's HTTP API
(`DAPR_HTTP_PORT`, default 3500) and prints one JSON line.

    python client.py invoke Counter c1 Increment 5     -> {"result": 5}
    python client.py invoke Counter c1 Get             -> {"result": 5}
    python client.py invoke Counter c1 GetCounts       -> {"result": {"count": 5, ...}}
    python client.py invoke Counter c1 StartReminder 1000

The argument, if any, is JSON. Methods of `CounterInterface` are called through the typed
proxy (`proxy.Increment(5)`); any other name goes through `proxy.invoke_method(name, body)`
with the argument's JSON as the body, so calling a method the actor does not have reaches the
sidecar too.

On success it prints `{"result": <the method's return value>}` and exits 0. When the sidecar
answers with an error it prints `{"error": {"errorCode": ..., "message": ..., "status": ...}}`
and exits 1; any other failure (no sidecar, bad arguments) prints `{"error": {"exception": ...}}`
and exits 2. The error's text also goes to stderr.
"""

import argparse
import asyncio
import json
import sys

from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprInternalError

from counter_interface import CounterInterface

# The wire names of the interface's methods (their `@actormethod(name=...)`).
TYPED_METHODS = {
    'Increment',
    'Get',
    'Set',
    'GetCounts',
    'StartReminder',
    'StopReminder',
    'StartTimer',
    'StopTimer',
    'Fail',
}


def emit(obj) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


async def invoke(actor_type: str, actor_id: str, method: str, arg_json) -> object:
    if method in TYPED_METHODS:
        proxy = ActorProxy.create(actor_type, ActorId(actor_id), CounterInterface)
        call = getattr(proxy, method)
        return await (call() if arg_json is None else call(json.loads(arg_json)))
    proxy = ActorProxy.create(actor_type, ActorId(actor_id))
    body = None if arg_json is None else json.dumps(json.loads(arg_json)).encode()
    raw = await proxy.invoke_method(method, body)
    return json.loads(raw) if raw else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    steps = parser.add_subparsers(dest='step', required=True)
    step = steps.add_parser('invoke', help='call one actor method')
    step.add_argument('actor_type')
    step.add_argument('actor_id')
    step.add_argument('method')
    step.add_argument('arg', nargs='?', help='the argument, as JSON')
    args = parser.parse_args()
    try:
        result = asyncio.run(invoke(args.actor_type, args.actor_id, args.method, args.arg))
    except DaprInternalError as error:
        emit(
            {
                'error': {
                    'errorCode': error.error_code,
                    'message': error.message,
                    'status': getattr(error, 'status_code', None),
                }
            }
        )
        print(f'{args.actor_type}/{args.actor_id}.{args.method}: {error}', file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - every other failure is reported the same way
        emit({'error': {'exception': repr(error)}})
        print(f'{args.actor_type}/{args.actor_id}.{args.method}: {error!r}', file=sys.stderr)
        return 2
    emit({'result': result})
    return 0


if __name__ == '__main__':
    sys.exit(main())
