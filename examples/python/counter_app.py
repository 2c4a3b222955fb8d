"""A Rookery app in Python: serves the ``Counter`` actor type over the gRPC app channel.

The same app as ``examples/counter.rs``, with grpcio. It opens one ``AppChannel.Connect``
stream to its host, sends ``RegisterTypes`` first, receives ``Registered``, then answers every
request the host sends (``ActivateActor``, ``InvokeActor``, ``DeactivateActor``) with one
``AppReply`` carrying the same ``request_id``. The host runs one turn at a time per actor, so
no per-actor locking is needed; requests are handled one after another.

``Counter`` methods: ``increment`` with data ``{"by": n}`` (default 1) returns the new value,
``get`` returns the value, both as a JSON number. Values live in this process's memory only: a
counter starts at 0 when activated and starts over at 0 after a deactivation (idle timeout, or
the actor moved). If the stream breaks (host restart) the app reconnects and registers again.

Usage (see README.md)::

    pip install -r requirements.txt
    python counter_app.py --host 127.0.0.1:50001

The gRPC stubs are generated from ``proto/`` with grpc_tools.protoc into ``--stubs-dir`` on
first start when they are not there yet.
"""

import argparse
import asyncio
import time
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
RUNTIME_PROTO = "rookery/v1/runtime.proto"


def load_stubs(stubs_dir):
    """Imports the generated modules, generating them first if needed."""
    if not os.path.exists(os.path.join(stubs_dir, "rookery", "v1", "runtime_pb2_grpc.py")):
        from grpc_tools import protoc  # only needed to generate

        os.makedirs(stubs_dir, exist_ok=True)
        # The same as the command in README.md; the first argument stands for argv[0].
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={stubs_dir}",
                f"--grpc_python_out={stubs_dir}",
                os.path.join(PROTO_ROOT, RUNTIME_PROTO),
            ]
        )
        if code != 0:
            sys.exit(f"grpc_tools.protoc failed with status {code}")
    # The generated modules import each other as `rookery.v1.*`.
    sys.path.insert(0, stubs_dir)
    from rookery.v1 import runtime_pb2, runtime_pb2_grpc

    return runtime_pb2, runtime_pb2_grpc


def handle_invoke(invoke, counters):
    """One Counter call: (response bytes, None) or (None, error message for the caller)."""
    value = counters.setdefault(invoke.actor_id, 0)
    if invoke.method == "increment":
        by = 1
        if invoke.data:
            try:
                body = json.loads(invoke.data)
            except ValueError as e:
                return None, f'increment expects {{"by": n}}: {e}'
            if isinstance(body, dict):
                by = body.get("by", 1)
            elif body is not None:
                return None, f'increment expects {{"by": n}}, got {body!r}'
        if not isinstance(by, int) or isinstance(by, bool):
            return None, f'"by" must be an integer, got {by!r}'
        value += by
        counters[invoke.actor_id] = value
    elif invoke.method != "get":
        return None, f"Counter has no method {invoke.method!r}"
    return json.dumps(value).encode(), None


async def serve(host, app_id, counters, pb, pb_grpc):
    """One connection: register Counter, then answer requests until the stream ends."""
    import grpc

    async with grpc.aio.insecure_channel(host) as channel:
        stub = pb_grpc.AppChannelStub(channel)
        call = stub.Connect()
        # The first message on the stream must be the registration.
        await call.write(
            pb.AppToHost(
                register=pb.RegisterTypes(
                    app_id=app_id,
                    # Options left unset take the host's defaults (`rookery host --config`).
                    types=[pb.ActorTypeOptions(actor_type="Counter")],
                )
            )
        )
        while True:
            request = await call.read()
            if request == grpc.aio.EOF:
                return
            kind = request.WhichOneof("message")
            if kind == "registered":
                print(f"counter_app: serving Counter on host {request.registered.host_id}", flush=True)
                continue
            turn = getattr(request, kind) if kind in ("invoke", "reminder", "timer") else None
            if turn is not None and turn.not_after_ms and time.time() * 1000 > turn.not_after_ms:
                # The fence: the host's claim on the actor may have lapsed (it was paused), and
                # another host may run the actor now. Refuse the turn; the host retries it there.
                reply = pb.AppReply(request_id=turn.request_id, lease_expired=pb.LeaseExpired())
                await call.write(pb.AppToHost(reply=reply))
                continue
            if kind == "activate":
                counters[request.activate.actor_id] = 0
                reply = pb.AppReply(request_id=request.activate.request_id, data=b"")
            elif kind == "deactivate":
                counters.pop(request.deactivate.actor_id, None)
                reply = pb.AppReply(request_id=request.deactivate.request_id, data=b"")
            elif kind == "invoke":
                data, error = handle_invoke(request.invoke, counters)
                if error is None:
                    reply = pb.AppReply(request_id=request.invoke.request_id, data=data)
                else:
                    # Reaches the caller as an application error with this message.
                    reply = pb.AppReply(request_id=request.invoke.request_id, error=error)
            elif kind == "timer":
                # Counter registers no timers; answer any tick so the turn ends.
                reply = pb.AppReply(request_id=request.timer.request_id, data=b"")
            elif kind == "reminder":
                # Any reminder of a counter adds 1 to it.
                actor_id = request.reminder.actor_id
                counters[actor_id] = counters.get(actor_id, 0) + 1
                reply = pb.AppReply(request_id=request.reminder.request_id, data=b"")
            else:
                continue
            await call.write(pb.AppToHost(reply=reply))


async def main():
    parser = argparse.ArgumentParser(description="Serves the Counter actor type to a Rookery host")
    parser.add_argument("--host", default="127.0.0.1:50001", help="the host's gRPC address")
    parser.add_argument("--app-id", default="counter-python", help="shown in `rookery status`")
    parser.add_argument(
        "--stubs-dir",
        default=os.path.join(HERE, "build"),
        help="where the generated gRPC modules are (generated there if missing)",
    )
    args = parser.parse_args()
    pb, pb_grpc = load_stubs(os.path.abspath(args.stubs_dir))
    import grpc

    # Counter values by actor id; kept across reconnects, reset by activations.
    counters = {}
    while True:
        try:
            await serve(args.host, args.app_id, counters, pb, pb_grpc)
            print("counter_app: the host closed the stream; reconnecting", flush=True)
        except grpc.aio.AioRpcError as e:
            print(f"counter_app: {e.code().name}: {e.details()}; reconnecting", flush=True)
        # Don't spin while the host is down.
        await asyncio.sleep(1)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
