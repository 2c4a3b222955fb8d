"""A Rookery app in Python: serves the ``Counter`` actor type over the gRPC app channel.

The same app as ``examples/counter.rs``, with grpcio. It opens one ``AppChannel.Connect``
stream to its host, sends ``RegisterTypes`` first, receives ``Registered``, then answers every
request the host sends (``ActivateActor``, ``InvokeActor``, ``DeactivateActor``) with one
``AppReply`` carrying the same ``request_id``. The host runs one turn at a time per actor;
turns of different actors run concurrently here, each in a task of its own.

``Counter`` methods: ``increment`` with data ``{"by": n}`` (default 1) returns the new value,
``get`` returns the value, both as a JSON number. The value lives in the actor's durable state
(key ``count``), read and written with ``StateRequest`` on the same stream: it survives
deactivation, moves to other hosts and restarts. An increment is answered only once the host
acknowledged the write as durable. If the stream breaks (host restart) the app reconnects and
registers again.

With ``--health-port P`` the app also serves the standard ``grpc.health.v1.Health`` service
(grpcio-health-checking) on ``127.0.0.1:P``, which a host started with ``--app-protocol grpc
--app-port P --enable-app-health-check`` probes. The overall service (``""``) is ``SERVING``
unless the file named by ``--unhealthy-file`` exists, then ``NOT_SERVING``: create the file
to make the app fail its health checks, delete it to make it pass them again (the file is
looked at every 0.1 s, and each change is logged).

Usage (see README.md)::

    pip install -r requirements.txt
    python counter_app.py --host 127.0.0.1:50001
    python counter_app.py --host 127.0.0.1:50001 --health-port 50051 --unhealthy-file /tmp/sick

A host started with ``--api-token`` (or ``DAPR_API_TOKEN``) accepts the stream only with its
token as ``dapr-api-token`` metadata: the app sends the ``DAPR_API_TOKEN`` of its environment
when it is set.

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


COUNT_KEY = "count"


class Connection:
    """One stream to the host: a single writer, and state requests awaiting their answers."""

    def __init__(self, call, pb):
        self.call = call
        self.pb = pb
        self.outbox = asyncio.Queue()
        self.waiting = {}
        self.next_correlation_id = 1

    async def write_forever(self):
        # grpc.aio allows one write at a time: every message goes through this one task.
        while True:
            await self.call.write(await self.outbox.get())

    def send(self, message):
        self.outbox.put_nowait(message)

    def reply(self, request_id, data=None, error=None):
        if error is None:
            reply = self.pb.AppReply(request_id=request_id, data=data or b"")
        else:
            # Reaches the caller as an application error with this message.
            reply = self.pb.AppReply(request_id=request_id, error=error)
        self.send(self.pb.AppToHost(reply=reply))

    async def state(self, actor_id, **operation):
        """Sends one StateRequest (``get=key`` or ``transaction=...``) and awaits its answer."""
        correlation_id = self.next_correlation_id
        self.next_correlation_id += 1
        answer = asyncio.get_running_loop().create_future()
        self.waiting[correlation_id] = answer
        request = self.pb.StateRequest(
            correlation_id=correlation_id, actor_type="Counter", actor_id=actor_id, **operation
        )
        self.send(self.pb.AppToHost(state_request=request))
        response = await answer
        if response.WhichOneof("result") == "error":
            raise RuntimeError(f"state: {response.error}")
        return response

    def answered(self, response):
        future = self.waiting.pop(response.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(response)

    async def load(self, actor_id):
        response = await self.state(actor_id, get=COUNT_KEY)
        return int(response.value.data) if response.value.found else 0

    async def store(self, actor_id, value):
        pb = self.pb
        upsert = pb.StateUpsert(key=COUNT_KEY, value=str(value).encode())
        transaction = pb.StateTransaction(operations=[pb.StateOperation(upsert=upsert)])
        await self.state(actor_id, transaction=transaction)


async def handle_invoke(connection, invoke):
    """One Counter call: (response bytes, None) or (None, error message for the caller)."""
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
        value = await connection.load(invoke.actor_id) + by
        await connection.store(invoke.actor_id, value)
    elif invoke.method == "get":
        value = await connection.load(invoke.actor_id)
    else:
        return None, f"Counter has no method {invoke.method!r}"
    return json.dumps(value).encode(), None


async def run_turn(connection, request_id, work):
    try:
        data, error = await work
    except RuntimeError as e:
        data, error = None, str(e)
    connection.reply(request_id, data=data, error=error)


def describe(job):
    """A job's data for the log: JSON data (a google.protobuf.Value) as JSON, else its size."""
    if job.data_type_url == "type.googleapis.com/google.protobuf.Value":
        from google.protobuf import json_format, struct_pb2

        value = struct_pb2.Value()
        value.ParseFromString(job.data)
        return json_format.MessageToJson(value, indent=None)
    return f"{len(job.data)} bytes"


async def add_one(connection, actor_id):
    await connection.store(actor_id, await connection.load(actor_id) + 1)
    return b"", None


async def serve(host, app_id, pb, pb_grpc):
    """One connection: register Counter, then answer requests until the stream ends."""
    import grpc

    async with grpc.aio.insecure_channel(host) as channel:
        stub = pb_grpc.AppChannelStub(channel)
        token = os.environ.get("DAPR_API_TOKEN")
        call = stub.Connect(metadata=(("dapr-api-token", token),) if token else None)
        connection = Connection(call, pb)
        # The first message on the stream must be the registration.
        connection.send(
            pb.AppToHost(
                register=pb.RegisterTypes(
                    app_id=app_id,
                    # Options left unset take the host's defaults (`rookery host --config`).
                    types=[pb.ActorTypeOptions(actor_type="Counter")],
                    # Also receive the jobs of this app id and the host's binding events.
                    receive_triggers=True,
                )
            )
        )
        writer = asyncio.create_task(connection.write_forever())
        turns = set()
        try:
            while True:
                request = await call.read()
                if request == grpc.aio.EOF:
                    return
                kind = request.WhichOneof("message")
                if kind == "registered":
                    print(f"counter_app: serving Counter on host {request.registered.host_id}", flush=True)
                    continue
                if kind == "state_response":
                    connection.answered(request.state_response)
                    continue
                turn = getattr(request, kind) if kind in ("invoke", "reminder", "timer") else None
                if turn is not None and turn.not_after_ms and time.time() * 1000 > turn.not_after_ms:
                    # The fence: the host's claim on the actor may have lapsed (it was paused),
                    # and another host may run the actor now. Refuse the turn; the host retries
                    # it there.
                    reply = pb.AppReply(request_id=turn.request_id, lease_expired=pb.LeaseExpired())
                    connection.send(pb.AppToHost(reply=reply))
                    continue
                if kind == "job":
                    # A job of the app fired (Jobs API): logged, and taken.
                    job = request.job
                    print(f"counter_app: job {job.name} due {job.due_at_ms} data {describe(job)}", flush=True)
                    connection.reply(job.request_id)
                    continue
                if kind == "binding":
                    print(f"counter_app: binding {request.binding.name}", flush=True)
                    connection.reply(request.binding.request_id)
                    continue
                if kind in ("activate", "deactivate", "timer"):
                    # Nothing to load or save eagerly; Counter registers no timers.
                    connection.reply(getattr(request, kind).request_id)
                elif kind == "invoke":
                    work = handle_invoke(connection, request.invoke)
                    task = asyncio.create_task(run_turn(connection, request.invoke.request_id, work))
                    turns.add(task)
                    task.add_done_callback(turns.discard)
                elif kind == "reminder":
                    # Any reminder of a counter adds 1 to it.
                    work = add_one(connection, request.reminder.actor_id)
                    task = asyncio.create_task(run_turn(connection, request.reminder.request_id, work))
                    turns.add(task)
                    task.add_done_callback(turns.discard)
        finally:
            writer.cancel()
            for task in turns:
                task.cancel()


# How often --unhealthy-file is looked for.
HEALTH_POLL_SECONDS = 0.1


async def start_health(address, port, unhealthy_file):
    """Serves grpc.health.v1 on address:port; the overall status follows whether
    ``unhealthy_file`` exists. Returns the server and the task that keeps its status current
    (both must stay referenced)."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    responses = health_pb2.HealthCheckResponse
    servicer = health.aio.HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{address}:{port}") == 0:
        sys.exit(f"counter_app: cannot listen on {address}:{port} for health checks")

    def wanted():
        sick = unhealthy_file is not None and os.path.exists(unhealthy_file)
        return responses.NOT_SERVING if sick else responses.SERVING

    async def announce(status):
        await servicer.set("", status)
        name = responses.ServingStatus.Name(status)
        print(f"counter_app: health {name} on {address}:{port}", flush=True)

    async def follow(current):
        while True:
            await asyncio.sleep(HEALTH_POLL_SECONDS)
            status = wanted()
            if status != current:
                await announce(status)
                current = status

    status = wanted()
    await announce(status)
    await server.start()
    return server, asyncio.create_task(follow(status))


async def main():
    parser = argparse.ArgumentParser(description="Serves the Counter actor type to a Rookery host")
    parser.add_argument("--host", default="127.0.0.1:50001", help="the host's gRPC address")
    parser.add_argument("--app-id", default="counter-python", help="shown in `rookery status`")
    parser.add_argument(
        "--stubs-dir",
        default=os.path.join(HERE, "build"),
        help="where the generated gRPC modules are (generated there if missing)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=os.environ.get("COUNTER_APP_HEALTH_PORT"),
        help="serve grpc.health.v1 on this port (the host's --app-port); default: not served",
    )
    parser.add_argument(
        "--health-address", default="127.0.0.1", help="the address the health service binds"
    )
    parser.add_argument(
        "--unhealthy-file",
        default=os.environ.get("COUNTER_APP_UNHEALTHY_FILE"),
        help="while this file exists, the health service answers NOT_SERVING",
    )
    args = parser.parse_args()
    pb, pb_grpc = load_stubs(os.path.abspath(args.stubs_dir))
    import grpc

    health = None  # the health server and its task, kept referenced until the app ends
    if args.health_port is not None:
        health = await start_health(args.health_address, args.health_port, args.unhealthy_file)

    while True:
        try:
            await serve(args.host, args.app_id, pb, pb_grpc)
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
