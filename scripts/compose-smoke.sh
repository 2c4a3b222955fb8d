#!/usr/bin/env bash
# End-to-end smoke test of docker-compose.yml: a real 3-placement, 3-host, 3-app cluster.
#   1. builds rookery:dev (scripts/docker-image.sh) and starts the cluster as its own compose
#      project, with the published ports moved to a block of its own (see below);
#   2. waits, polling `rookery status --json` from this machine against the published placement
#      ports, for a leader and 3 connected hosts serving Counter;
#   3. invokes counters through host-1's published port and checks the values;
#   4. kills the placement leader's container (docker kill) and waits for a new leader, then
#      checks counters still answer; restarts the killed node and waits for it to rejoin;
#   5. kills host-2's container: its actors come back on the other hosts with their values
#      (actor state is in the cluster's PostgreSQL); restarts it and waits for it to rejoin;
#   6. always (trap) prints the logs' tails on failure and runs `docker-compose down -v`.
# Exits non-zero on the first failed check. Only 127.0.0.1 ports are dialed from this machine.
#
# Environment:
#   ROOKERY_SMOKE_PROJECT     compose project name (default rookery-smoke)
#   ROOKERY_SMOKE_PORT_BASE   published ports are BASE+1 (host-1) and BASE+5..7 (placement-1..3)
#                             on 127.0.0.1 (default 25000, away from `rookery up`'s 50001/50005)
#   ROOKERY_SMOKE_TIMEOUT     seconds each wait may take (default 120)
#   ROOKERY_SMOKE_SKIP_BUILD  1: use the existing rookery:dev image and target/release/rookery
set -euo pipefail
cd "$(dirname "$0")/.."

project="${ROOKERY_SMOKE_PROJECT:-rookery-smoke}"
base="${ROOKERY_SMOKE_PORT_BASE:-25000}"
timeout_s="${ROOKERY_SMOKE_TIMEOUT:-120}"
export ROOKERY_HOST_1_PORT=$((base + 1))
export ROOKERY_PLACEMENT_1_PORT=$((base + 5))
export ROOKERY_PLACEMENT_2_PORT=$((base + 6))
export ROOKERY_PLACEMENT_3_PORT=$((base + 7))
export ROOKERY_IMAGE="${ROOKERY_IMAGE:-rookery:dev}"
host_addr="127.0.0.1:$ROOKERY_HOST_1_PORT"
placement_addrs="127.0.0.1:$ROOKERY_PLACEMENT_1_PORT,127.0.0.1:$ROOKERY_PLACEMENT_2_PORT,127.0.0.1:$ROOKERY_PLACEMENT_3_PORT"
rookery=target/release/rookery

passed=0
started=$SECONDS
say() { printf '[smoke %3ds] %s\n' "$((SECONDS - started))" "$*"; }
pass() { passed=$((passed + 1)); say "ok: $*"; }
fail() { say "FAIL: $*"; exit 1; }
compose() { docker-compose --project-name "$project" --file docker-compose.yml "$@"; }

command -v docker-compose >/dev/null || fail "docker-compose is not installed"
command -v python3 >/dev/null || fail "python3 is needed to read rookery status --json"

cluster_up=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ $cluster_up == 1 ]]; then
        if [[ $rc != 0 ]]; then
            say "logs (last 15 lines of each service):"
            compose logs --no-color --tail 15 2>&1 | sed 's/^/    /' || true
            say "containers:"
            compose ps 2>&1 | sed 's/^/    /' || true
        fi
        say "docker-compose down -v"
        compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || say "warning: down failed"
    fi
    if [[ $rc == 0 ]]; then
        say "compose-smoke: $passed passed, 0 failed"
    else
        say "compose-smoke: $passed passed, 1 failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. image and cluster ---------------------------------------------------------------------
if [[ "${ROOKERY_SMOKE_SKIP_BUILD:-0}" != 1 ]]; then
    say "building the image"
    scripts/docker-image.sh
fi
[[ -x $rookery ]] || fail "$rookery is missing (build it, or unset ROOKERY_SMOKE_SKIP_BUILD)"
docker run --rm --entrypoint /usr/local/bin/counter "$ROOKERY_IMAGE" --help >/dev/null 2>&1 ||
    fail "$ROOKERY_IMAGE has no working /usr/local/bin/counter (the compose file runs it)"
pass "image $ROOKERY_IMAGE: $(($(docker image inspect --format '{{.Size}}' "$ROOKERY_IMAGE") / 1000000)) MB, rookery and counter run"

for port in "$ROOKERY_HOST_1_PORT" "$ROOKERY_PLACEMENT_1_PORT" "$ROOKERY_PLACEMENT_2_PORT" "$ROOKERY_PLACEMENT_3_PORT"; do
    python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null ||
        fail "127.0.0.1:$port is in use (a leftover project? try: docker-compose -p $project down -v; or set ROOKERY_SMOKE_PORT_BASE)"
done

cluster_up=1
say "docker-compose up -d (project $project, host-1 on $host_addr, placement on $placement_addrs)"
compose up -d 2>&1 | sed 's/^/    /'

# --- helpers ----------------------------------------------------------------------------------
status_json() { "$rookery" status --placement "$placement_addrs" --json 2>/dev/null; }

# query EXPR: reads status JSON on stdin and evaluates the Python expression EXPR over it (`s`,
# plus `counter_hosts` and `reachable`). Prints the value; exits 1 when it is False or None.
query() {
    python3 -c '
import json, sys
s = json.load(sys.stdin)
counter_hosts = [h for h in s.get("hosts") or [] if "Counter" in (h.get("actor_types") or []) and h.get("connected")]
reachable = [m for m in s.get("members") or [] if m.get("reachable")]
value = eval(sys.argv[1])
if value is True:
    sys.exit(0)
print(value)
sys.exit(1 if value is False or value is None else 0)
' "$1"
}

# wait_for DESCRIPTION PYTHON-EXPR: polls status until the expression holds; the deadline fails.
wait_for() {
    local what=$1 expr=$2 deadline=$((SECONDS + timeout_s)) json=""
    while ((SECONDS < deadline)); do
        if json="$(status_json)" && query "$expr" <<<"$json" >/dev/null 2>&1; then
            last_status=$json
            return 0
        fi
        sleep 1
    done
    say "last status: ${json:-<no answer>}"
    fail "timed out after ${timeout_s}s waiting for: $what"
}

# call ACTOR METHOD [DATA]: invokes through host-1 and sets $reply; a failed call fails the test.
# (Not a $(...) function: `fail` must exit this shell.)
call() {
    local args=("$1" "$2" --host "$host_addr" --timeout-ms 10000)
    [[ $# -ge 3 ]] && args+=(--data "$3")
    reply="$("$rookery" invoke "${args[@]}" 2>&1)" || fail "invoke $*: $reply"
}

expect_eq() { [[ "$1" == "$2" ]] || fail "$3: got '$1', expected '$2'"; }

# --- 2. the cluster forms -------------------------------------------------------------------------
wait_for "a placement leader, 3 reachable members, 3 connected hosts with type Counter" \
    's["leader"] is not None and len(reachable) == 3 and len({h["id"] for h in counter_hosts}) == 3'
leader="$(query 's["leader"]' <<<"$last_status")"
hosts="$(query '" ".join(sorted(h["id"] for h in counter_hosts))' <<<"$last_status")"
pass "cluster formed: leader placement-$leader, term $(query 's["term"]' <<<"$last_status"), hosts $hosts"

# The state store may still be starting (initdb on a fresh volume): until it answers, calls that
# need it fail with UNAVAILABLE. Wait for one call to go through.
deadline=$((SECONDS + timeout_s))
until reply="$("$rookery" invoke Counter/warm-up get --host "$host_addr" --timeout-ms 10000 2>&1)"; do
    ((SECONDS < deadline)) || fail "no call went through within ${timeout_s}s: $reply"
    sleep 1
done
pass "the state store answers (Counter/warm-up = $reply)"

# --- 3. counters through host-1 (actors spread over the 3 hosts' ring; host-1 forwards) -----------
actors=(c1 c2 c3 c4 c5 c6 c7 c8 c9)
for i in "${!actors[@]}"; do
    by=$((i + 1))
    call "Counter/${actors[$i]}" increment "{\"by\":$by}"
    expect_eq "$reply" "$by" "Counter/${actors[$i]} after one increment by $by"
    call "Counter/${actors[$i]}" increment "{\"by\":$by}"
    expect_eq "$reply" "$((2 * by))" "Counter/${actors[$i]} after two increments by $by"
    call "Counter/${actors[$i]}" get
    expect_eq "$reply" "$((2 * by))" "Counter/${actors[$i]} get"
done
pass "${#actors[@]} counters: increment twice then get, through $host_addr"

# Where the actors live: hosts report their active actors in heartbeats (`active_actors` in status,
# from the leader). Where reported, the 9 hash-placed actors must not all sit on one host.
expr='all(h.get("active_actors") is not None for h in counter_hosts)'
expr+=' and sum(h["active_actors"] for h in counter_hosts) >= 9'
expr+=' and " ".join(h["id"].split(":")[0] + "=" + str(h["active_actors"]) for h in sorted(counter_hosts, key=lambda h: h["id"]))'
spread=""
deadline=$((SECONDS + 10))
while ((SECONDS < deadline)); do
    json="$(status_json)" || json=""
    if [[ -n $json ]] && spread="$(query "$expr" <<<"$json" 2>/dev/null)"; then
        break
    fi
    spread=""
    sleep 1
done
if [[ -z $spread ]]; then
    say "note: hosts report no active_actors in status; actor spread not checked"
else
    busy="$(query 'sum(1 for h in counter_hosts if h["active_actors"])' <<<"$json")"
    ((busy >= 2)) || fail "all actors on one host: $spread"
    pass "actors spread over $busy hosts: $spread"
fi

# --- 4. placement leader failure ------------------------------------------------------------------
victim="$(compose ps -q "placement-$leader")"
[[ -n $victim ]] || fail "no container for placement-$leader"
say "docker kill placement-$leader (the leader)"
docker kill "$victim" >/dev/null
killed_at=$SECONDS
wait_for "a new leader other than placement-$leader" \
    "s[\"leader\"] not in (None, $leader) and len(reachable) == 2"
new_leader="$(query 's["leader"]' <<<"$last_status")"
pass "new leader placement-$new_leader (term $(query 's["term"]' <<<"$last_status")) $((SECONDS - killed_at))s after the kill"

wait_for "3 connected hosts with type Counter under the new leader" \
    "s[\"leader\"] == $new_leader and len({h[\"id\"] for h in counter_hosts}) == 3"
# Counter values live in actor state (PostgreSQL): every one is kept.
for i in "${!actors[@]}"; do
    call "Counter/${actors[$i]}" get
    expect_eq "$reply" "$((2 * (i + 1)))" "Counter/${actors[$i]} after the placement fail-over"
done
kept=${#actors[@]}
call Counter/after-failover increment '{"by":5}'
expect_eq "$reply" 5 "a new counter after the fail-over"
call Counter/after-failover increment '{"by":5}'
expect_eq "$reply" 10 "a new counter after the fail-over"
pass "calls after the fail-over: ${#actors[@]} counters answer ($kept kept their value), a new one counts"

say "docker start placement-$leader"
docker start "$victim" >/dev/null
wait_for "placement-$leader rejoins: 3 reachable members and a leader" \
    's["leader"] is not None and len(reachable) == 3'
pass "placement-$leader rejoined as $(query "[m[\"raft_state\"] for m in s[\"members\"] if m[\"id\"] == $leader][0]" <<<"$last_status") (leader placement-$(query 's["leader"]' <<<"$last_status"))"

# --- 5. a host dies: its actors move, with their state ---------------------------------------------
victim="$(compose ps -q host-2)"
[[ -n $victim ]] || fail "no container for host-2"
say "docker kill host-2"
docker kill "$victim" >/dev/null
wait_for "host-2 removed: 2 connected hosts with type Counter" \
    'len({h["id"] for h in counter_hosts}) == 2 and not any(h["id"].startswith("host-2") for h in counter_hosts)'
for i in "${!actors[@]}"; do
    call "Counter/${actors[$i]}" get
    expect_eq "$reply" "$((2 * (i + 1)))" "Counter/${actors[$i]} after host-2 died"
done
call Counter/c1 increment '{"by":1}'
expect_eq "$reply" 3 "Counter/c1 counts on after host-2 died"
pass "host-2 killed: all ${#actors[@]} counters kept their values on the remaining hosts"
say "docker start host-2"
docker start "$victim" >/dev/null
wait_for "host-2 rejoins: 3 connected hosts with type Counter" \
    'len({h["id"] for h in counter_hosts}) == 3'
call Counter/c1 get
expect_eq "$reply" 3 "Counter/c1 after host-2 rejoined"
pass "host-2 rejoined; values unchanged"
