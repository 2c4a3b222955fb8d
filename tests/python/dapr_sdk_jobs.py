"""The official Dapr Python SDK's Jobs API client, run against a Rookery host by
``tests/jobs_api.rs``: ``DaprClient.schedule_job_alpha1``, ``get_job_alpha1`` and
``delete_job_alpha1`` on the host's gRPC port, as an app calls daprd's 50001.

Prints one JSON line per step: ``{"step": <name>, "ok": true, ...what it read}`` or
``{"step": <name>, "ok": false, "code": <gRPC code name>, "details": <message>}``. It asserts
nothing itself: the Rust test reads the lines and checks them.

Usage::

    python dapr_sdk_jobs.py --address 127.0.0.1:50001
"""

import argparse
import json

import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._jobs import ConstantFailurePolicy, Job
from google.protobuf import any_pb2, wrappers_pb2


def report(step, call):
    try:
        extra = call() or {}
        print(json.dumps({"step": step, "ok": True, **extra}), flush=True)
    except grpc.RpcError as e:
        print(json.dumps({"step": step, "ok": False, "code": e.code().name, "details": e.details()}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    data = any_pb2.Any()
    data.Pack(wrappers_pb2.StringValue(value="vacuum the lobby"))
    job = Job(
        name="sdk-job",
        schedule="@every 1h",
        repeats=5,
        due_time="10m",
        data=data,
        failure_policy=ConstantFailurePolicy(max_retries=2, interval_seconds=5),
    )
    with DaprClient(address=args.address) as client:
        report("schedule", lambda: client.schedule_job_alpha1(job) and None)
        report("schedule_again", lambda: client.schedule_job_alpha1(job) and None)
        report("overwrite", lambda: client.schedule_job_alpha1(job, overwrite=True) and None)

        def get():
            got = client.get_job_alpha1("sdk-job")
            text = wrappers_pb2.StringValue()
            got.data.Unpack(text)
            return {
                "name": got.name,
                "schedule": got.schedule,
                "repeats": got.repeats,
                "due_time": got.due_time,
                "data": text.value,
            }

        report("get", get)
        report("delete", lambda: client.delete_job_alpha1("sdk-job") and None)
        report("get_deleted", get)


if __name__ == "__main__":
    main()
