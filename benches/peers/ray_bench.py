"""Ray actors on this machine, as a peer of Rookery's cluster figures.

Measures, on a local Ray cluster started here (``ray.init`` with one CPU per core):
- calls/s to one actor: batches of ``IN_FLIGHT`` calls in flight (64-byte payloads, echoed);
- calls/s to many actors: the same, spread round-robin over ``MANY`` actors (64, like the
  suite's Rookery runs; each a worker process of its own);
- n:n: ``CALLERS`` caller actors, each keeping ``IN_FLIGHT / CALLERS`` async calls in flight
  round-robin over the same ``TARGETS`` actors, so calls leave several processes at once;
- one call at a time to one actor (the 1:1 sync rate and its p50/p99);
- actor creation rate: the ``MANY`` actors, each created and called once.

Every Ray actor is a worker process of its own, so the creation count is small next to the
suite's 10k Rookery activations; the resident memory per actor process is reported too.

Run: ``python3 benches/peers/ray_bench.py`` (``scripts/bench.sh`` does). Writes
``target/bench-results/ray.json`` (or under ``$ROOKERY_BENCH_RESULTS``).
"""

import json
import os
import sys
import time

try:
    import ray
except ImportError:
    print("ray is not installed (pip install ray); skipping", file=sys.stderr)
    sys.exit(0)

PAYLOAD = b"\xa5" * 64
IN_FLIGHT = 64
CALLS = 20_000
MANY = int(os.environ.get("ROOKERY_RAY_MANY", "64"))
CALLERS = 4
TARGETS = 4
SEQUENTIAL = 2_000


@ray.remote(num_cpus=0)
class Echo:
    def ping(self, data):
        return data

    def rss_bytes(self):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


@ray.remote(num_cpus=0)
class Caller:
    """Drives calls to other actors from a process of its own (the n:n scenario)."""

    async def drive(self, targets, calls, in_flight):
        import asyncio

        async def one(i):
            assert await targets[i % len(targets)].ping.remote(PAYLOAD) == PAYLOAD

        started = time.time()
        pending = set()
        sent = 0
        while sent < calls or pending:
            while sent < calls and len(pending) < in_flight:
                pending.add(asyncio.ensure_future(one(sent)))
                sent += 1
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return started, time.time()


def n_to_n(callers, targets, calls_per_caller):
    """All callers at once; the rate over the span from the first start to the last end."""
    spans = ray.get(
        [c.drive.remote(targets, calls_per_caller, IN_FLIGHT // len(callers)) for c in callers]
    )
    span = max(end for _, end in spans) - min(start for start, _ in spans)
    return len(callers) * calls_per_caller / span


def throughput(actors, calls):
    """Keeps IN_FLIGHT calls in flight over ``actors`` until ``calls`` have answered."""
    started = time.perf_counter()
    pending = []
    sent = 0
    done = 0
    while done < calls:
        while sent < calls and len(pending) < IN_FLIGHT:
            pending.append(actors[sent % len(actors)].ping.remote(PAYLOAD))
            sent += 1
        ready, pending = ray.wait(pending, num_returns=1)
        for answer in ray.get(ready):
            assert answer == PAYLOAD
        done += len(ready)
    return calls / (time.perf_counter() - started)


def percentile(sorted_values, p):
    return sorted_values[round((len(sorted_values) - 1) * p)]


def main():
    out_dir = os.environ.get("ROOKERY_BENCH_RESULTS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "bench-results"
    )
    os.makedirs(out_dir, exist_ok=True)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    results = {"ray_version": ray.__version__, "in_flight": IN_FLIGHT, "payload_bytes": 64}

    # The small scenarios first, while only their own actors exist: every Ray actor is a
    # process, and 64 idle ones on 2 cores slow every other call down.
    one = Echo.remote()
    ray.get(one.ping.remote(PAYLOAD))
    throughput([one], 2_000)  # warm-up
    results["one_actor_calls_per_s"] = round(throughput([one], CALLS))

    latencies = []
    for _ in range(SEQUENTIAL):
        sent = time.perf_counter()
        ray.get(one.ping.remote(PAYLOAD))
        latencies.append((time.perf_counter() - sent) * 1e6)
    latencies.sort()
    results["sequential_p50_us"] = round(percentile(latencies, 0.5))
    results["sequential_p99_us"] = round(percentile(latencies, 0.99))
    results["sequential_calls_per_s"] = round(len(latencies) / (sum(latencies) / 1e6))

    callers = [Caller.remote() for _ in range(CALLERS)]
    targets = [Echo.remote() for _ in range(TARGETS)]
    ray.get([a.ping.remote(PAYLOAD) for a in targets])
    n_to_n(callers, targets, 500)  # warm-up
    results["n_to_n"] = f"{CALLERS} callers x {TARGETS} actors"
    results["n_to_n_calls_per_s"] = round(n_to_n(callers, targets, CALLS // CALLERS))
    for actor in [*callers, *targets]:
        ray.kill(actor)

    # Creation: the MANY actors, each created and called once; then calls spread over them.
    started = time.perf_counter()
    many = [Echo.remote() for _ in range(MANY)]
    ray.get([a.ping.remote(PAYLOAD) for a in many])
    elapsed = time.perf_counter() - started
    results["created_actors"] = MANY
    results["actor_creations_per_s"] = round(MANY / elapsed, 1)
    rss = ray.get([a.rss_bytes.remote() for a in many])
    results["rss_bytes_per_actor_process"] = round(sum(rss) / len(rss))
    throughput(many, 2_000)
    results["many_actors"] = MANY
    results["many_actors_calls_per_s"] = round(throughput(many, CALLS))

    for actor in [one, *many]:
        ray.kill(actor)
    ray.shutdown()
    results["unix_time_s"] = int(time.time())
    path = os.path.join(out_dir, "ray.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
