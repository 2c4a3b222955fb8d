"""A grpcio client of Dapr's gRPC actor API, run against Rookery hosts by ``tests/dapr_grpc.rs``.

It calls ``dapr.proto.runtime.v1.Dapr`` on a host's gRPC port as a Dapr client calls daprd's
50001, and prints one JSON line per call: ``{"step": <name>, "code": <gRPC code name>,
"details": <status message>, ...}`` plus what the answer held (``data``, metadata fields). It
asserts nothing itself: the Rust test reads the lines and checks them. It exits non-zero, with
a message on stderr, only when it cannot run at all (stubs, connection).

Stubs come from the repo's ``proto/dapr/**`` files, generated with grpc_tools.protoc into
``--stubs-dir``; with ``--sdk-stubs`` it uses the ``dapr`` SDK's own generated modules instead,
which checks Rookery's ``.proto`` files against Dapr's on the wire.

Usage::

    python dapr_grpc_client.py --target 127.0.0.1:50001 --stubs-dir /tmp/stubs \\
        --actor-id g1 [--secured-target 127.0.0.1:50002 --token secret] [--sdk-stubs]
"""

import argparse
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["dapr/proto/runtime/v1/dapr.proto", "dapr/proto/common/v1/common.proto"]

# Bound on every call: a host that never answers fails the run instead of hanging it.
CALL_TIMEOUT = 30
CONNECT_TIMEOUT = 30


def load_stubs(stubs_dir, sdk):
    """The generated modules: the SDK's, or generated from the repo's protos."""
    if not sdk:
        from grpc_tools import protoc

        os.makedirs(stubs_dir, exist_ok=True)
        # Google's well-known types (any.proto, ...) ship inside grpc_tools.
        well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        # The first argument stands for argv[0].
        code = protoc.main(
            ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
             f"--python_out={stubs_dir}", f"--grpc_python_out={stubs_dir}"]
            + [os.path.join(PROTO_ROOT, proto) for proto in PROTOS]
        )
        if code != 0:
            sys.exit(f"grpc_tools.protoc failed with status {code}")
        # Regular packages, so these win over an installed `dapr` SDK on sys.path.
        for package in ["dapr", "dapr/proto", "dapr/proto/runtime", "dapr/proto/runtime/v1",
                        "dapr/proto/common", "dapr/proto/common/v1"]:
            open(os.path.join(stubs_dir, package, "__init__.py"), "a").close()
        sys.path.insert(0, stubs_dir)
        from dapr.proto.runtime.v1 import dapr_pb2 as pb, dapr_pb2_grpc as pb_grpc
    else:
        # The SDK spreads the messages over one module per area; the stubs need two of them.
        from dapr.proto.runtime.v1 import actors_pb2, metadata_pb2, dapr_pb2_grpc as pb_grpc

        pb = types.SimpleNamespace(**{**vars(actors_pb2), **vars(metadata_pb2)})
    from dapr.proto.common.v1 import common_pb2 as common
    from google.protobuf import any_pb2

    origin = os.path.dirname(pb_grpc.__file__)
    want_sdk = not origin.startswith(os.path.abspath(stubs_dir))
    if want_sdk != sdk:
        sys.exit(f"imported the wrong stubs: {origin}")
    return pb, pb_grpc, common, any_pb2


def text(data):
    return data.decode("utf-8", "backslashreplace")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="host:port of a host's gRPC API")
    parser.add_argument("--stubs-dir", required=True)
    parser.add_argument("--actor-id", required=True, help="the Counter actor to use")
    parser.add_argument("--secured-target", help="a host run with --api-token")
    parser.add_argument("--token", help="its API token")
    parser.add_argument("--sdk-stubs", action="store_true", help="use the dapr SDK's stubs")
    args = parser.parse_args()

    pb, pb_grpc, common, any_pb2 = load_stubs(os.path.abspath(args.stubs_dir), args.sdk_stubs)
    import grpc

    def connect(target):
        channel = grpc.insecure_channel(target)
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
        except grpc.FutureTimeoutError:
            sys.exit(f"cannot connect to {target} within {CONNECT_TIMEOUT}s")
        return channel

    def call(step, method, request, metadata=None, answer=None):
        """Makes one call and prints what came back."""
        out = {"step": step}
        try:
            response = method(request, timeout=CALL_TIMEOUT, metadata=metadata)
            out.update(code="OK", details="")
            if answer is not None:
                out.update(answer(response))
        except grpc.RpcError as e:
            out.update(code=e.code().name, details=e.details() or "")
        print(json.dumps(out), flush=True)

    def data(response):
        return {"data": text(response.data)}

    channel = connect(args.target)
    dapr = pb_grpc.DaprStub(channel)
    actor = ("Counter", args.actor_id)

    def invoke(step, method, payload, metadata=None, actor_id=None):
        request = pb.InvokeActorRequest(
            actor_type=actor[0], actor_id=actor_id or actor[1], method=method,
            data=payload, metadata=metadata or {},
        )
        call(step, dapr.InvokeActor, request, answer=data)

    invoke("invoke_increment", "increment", b'{"by": 3}')
    invoke("invoke_reentrant", "increment", b'{"by": 2}',
           metadata={"Dapr-Reentrancy-Id": f"py-chain-{args.actor_id}"})
    invoke("invoke_get", "get", b"")
    invoke("invoke_bad_id", "get", b"", actor_id="a/b")
    # Over the host's default --max-request-size of 4 MB.
    invoke("invoke_too_large", "echo", b"x" * (5 * 1024 * 1024))
    # Bytes that are no InvokeActorRequest.
    garbage_rpc = channel.unary_unary(
        "/dapr.proto.runtime.v1.Dapr/InvokeActor",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    call("invoke_garbage", garbage_rpc, b"\xff\xff\xff\xff")

    def op(kind, key, value=None, metadata=None):
        any_value = any_pb2.Any(type_url="", value=value) if value is not None else None
        return pb.TransactionalActorStateOperation(
            operationType=kind, key=key, value=any_value, metadata=metadata or {})

    def transact(step, operations, actor_id=None):
        request = pb.ExecuteActorStateTransactionRequest(
            actor_type=actor[0], actor_id=actor_id or actor[1], operations=operations)
        call(step, dapr.ExecuteActorStateTransaction, request)

    def get_state(step, key):
        request = pb.GetActorStateRequest(actor_type=actor[0], actor_id=actor[1], key=key)
        call(step, dapr.GetActorState, request, answer=data)

    transact("txn_upsert", [
        op("upsert", "k1", b'{"a": 1}'),
        op("upsert", "k2", b'"two"', {"ttlInSeconds": "3600"}),
        op("delete", "k3"),
    ])
    get_state("get_k1", "k1")
    get_state("get_k2", "k2")
    transact("txn_delete", [op("delete", "k1")])
    get_state("get_k1_deleted", "k1")
    get_state("get_missing", "never-written")
    transact("txn_unsupported", [op("merge", "k1", b"1")])
    transact("txn_not_active", [op("upsert", "k1", b"1")], actor_id="py-never-active")

    def reminder(step, name, due_time, payload=b"", overwrite=None, actor_type=None, **extra):
        request = pb.RegisterActorReminderRequest(
            actor_type=actor_type or actor[0], actor_id=actor[1], name=name, due_time=due_time,
            data=payload, **extra)
        if overwrite is not None:
            request.overwrite = overwrite
        call(step, dapr.RegisterActorReminder, request)

    def unregister_reminder(step, name):
        request = pb.UnregisterActorReminderRequest(actor_type=actor[0], actor_id=actor[1], name=name)
        call(step, dapr.UnregisterActorReminder, request)

    drop = common.JobFailurePolicy(drop=common.JobFailurePolicyDrop())
    reminder("reminder_ping", "py-ping", "0s", b"hello", failure_policy=drop)
    reminder("reminder_later", "py-later", "1h")
    reminder("reminder_later_again", "py-later", "1h", overwrite=False)
    reminder("reminder_later_overwrite", "py-later", "2h", overwrite=True)
    unregister_reminder("unregister_later", "py-later")
    reminder("reminder_later_after_delete", "py-later", "1h", overwrite=False)
    unregister_reminder("unregister_later_again", "py-later")
    unregister_reminder("unregister_missing", "py-never-registered")
    # Kept, so the test can read back what was stored.
    reminder("reminder_data", "py-data", "1h", b"hello")
    reminder("reminder_unhosted", "r", "1h", actor_type="NotServedHere")
    reminder("reminder_empty_name", "", "1h")

    def timer(step, name, due_time, payload=b"", actor_id=None):
        request = pb.RegisterActorTimerRequest(
            actor_type=actor[0], actor_id=actor_id or actor[1], name=name, due_time=due_time,
            callback="onTick", data=payload)
        call(step, dapr.RegisterActorTimer, request)

    def unregister_timer(step, name):
        request = pb.UnregisterActorTimerRequest(actor_type=actor[0], actor_id=actor[1], name=name)
        call(step, dapr.UnregisterActorTimer, request)

    timer("timer_tick", "py-tick", "0s", b'{"n": 1}')
    timer("timer_later", "py-later", "1h")
    unregister_timer("unregister_timer_later", "py-later")
    unregister_timer("unregister_timer_missing", "py-never-registered")
    timer("timer_not_active", "py-tick", "0s", actor_id="py-never-active")

    def metadata(response):
        runtime = response.actor_runtime
        return {
            "id": response.id,
            "runtime_version": response.runtime_version,
            "actors": {c.type: c.count for c in response.active_actors_count},
            "runtime_status": pb.ActorRuntime.ActorRuntimeStatus.Name(runtime.runtime_status),
            "active_actors": {c.type: c.count for c in runtime.active_actors},
            "host_ready": runtime.host_ready,
            "placement": runtime.placement,
        }

    call("metadata", dapr.GetMetadata, pb.GetMetadataRequest(), answer=metadata)

    # A method of Dapr's service that Rookery does not serve, called by its path.
    get_state_rpc = channel.unary_unary(
        "/dapr.proto.runtime.v1.Dapr/GetState",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    call("unimplemented_get_state", get_state_rpc, b"")

    if args.secured_target:
        secured = pb_grpc.DaprStub(connect(args.secured_target))
        call("secured_no_token", secured.GetMetadata, pb.GetMetadataRequest())
        call("secured_wrong_token", secured.GetMetadata, pb.GetMetadataRequest(),
             metadata=[("dapr-api-token", "not-" + args.token)])
        call("secured_with_token", secured.GetMetadata, pb.GetMetadataRequest(),
             metadata=[("dapr-api-token", args.token)], answer=lambda r: {"id": r.id})
        call("secured_invoke_no_token", secured.InvokeActor,
             pb.InvokeActorRequest(actor_type="Counter", actor_id="x", method="get"))


if __name__ == "__main__":
    main()
