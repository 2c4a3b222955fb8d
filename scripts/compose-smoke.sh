#!/usr/bin/env bash
# End-to-end fault test of docker-compose.yml: a real 3-placement, 3-host, 3-app cluster (CI
# runs it: .ci/run).
#   1. builds rookery:dev (scripts/docker-image.sh) and starts the cluster as a compose project
#      of its own (a new name each run), with the published ports moved to a block of their own
#      (see below); waits for every container's health check to pass;
#   2. waits, polling `rookery status --json` from this machine against the published placement
#      ports, for a leader and 3 connected hosts serving Counter;
#   3. invokes counters through host-1's published port and checks the values;
#   4. creates a reminder (3 firings, 1 s apart) and waits for its counter to count them;
#   5. kills the placement leader's container (docker kill) and waits for a new leader, then
#      checks counters still answer; restarts the killed node and waits for it to rejoin;
#   6. kills host-2's container: every actor answers with its value from the other hosts
#      (actor state is in the cluster's PostgreSQL); restarts it and waits for it to rejoin;
#   7. disconnects the placement leader from the compose network (docker network disconnect):
#      the other two elect a leader and the cluster serves on; reconnects it and waits until it
#      has caught up with the leader's log and is healthy again;
#   8. always (trap), also on failure or ^C: prints the logs' tails on failure, runs
#      `docker-compose down -v --remove-orphans`, and checks that no container, volume or
#      network of the project is left (removing any it finds, and failing then).
# Exits non-zero on the first failed check. Only 127.0.0.1 ports are dialed from this machine.
# Uses `docker compose` when the engine's CLI has it, else docker-compose (v1).
#
# Environment:
#   ROOKERY_IMAGE_PROFILE     release (default) or debug: which binaries the image is built from
#                             (scripts/docker-image.sh) and which `rookery` CLI this script runs
#   ROOKERY_SMOKE_PROJECT     compose project name (default rookery-smoke-<time>-<pid>)
#   ROOKERY_SMOKE_PORT_BASE   published ports are BASE+1 (host-1) and BASE+5..7 (placement-1..3)
#                             on 127.0.0.1 (default 25000, away from `rookery up`'s 50001/50005)
#   ROOKERY_SMOKE_TIMEOUT     seconds each wait may take (default 120)
#   ROOKERY_SMOKE_SKIP_BUILD  1: use the existing rookery:dev image and target/<profile>/rookery
set -euo pipefail
cd "$(dirname "$0")/.."

project="${ROOKERY_SMOKE_PROJECT:-rookery-smoke-$(date +%Y%m%d%H%M%S)-$$}"
profile="${ROOKERY_IMAGE_PROFILE:-release}"
base="${ROOKERY_SMOKE_PORT_BASE:-25000}"
timeout_s="${ROOKERY_SMOKE_TIMEOUT:-120}"
export ROOKERY_HOST_1_PORT=$((base + 1))
export ROOKERY_PLACEMENT_1_PORT=$((base + 5))
export ROOKERY_PLACEMENT_2_PORT=$((base + 6))
export ROOKERY_PLACEMENT_3_PORT=$((base + 7))
export ROOKERY_IMAGE="${ROOKERY_IMAGE:-rookery:dev}"
host_addr="127.0.0.1:$ROOKERY_HOST_1_PORT"
placement_addrs="127.0.0.1:$ROOKERY_PLACEMENT_1_PORT,127.0.0.1:$ROOKERY_PLACEMENT_2_PORT,127.0.0.1:$ROOKERY_PLACEMENT_3_PORT"
rookery="target/$profile/rookery"

passed=0
started=$SECONDS
say() { printf '[smoke %3ds] %s\n' "$((SECONDS - started))" "$*"; }
pass() { passed=$((passed + 1)); say "ok: $*"; }
fail() { say "FAIL: $*"; exit 1; }

command -v docker >/dev/null || fail "docker is not installed"
command -v python3 >/dev/null || fail "python3 is needed to read rookery status --json"
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
else
    if ! command -v docker-compose >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
        say "installing Debian's docker-compose"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    fi
    command -v docker-compose >/dev/null || fail "neither docker compose nor docker-compose is installed"
    compose_cmd=(docker-compose)
fi
compose() { "${compose_cmd[@]}" --project-name "$project" --file docker-compose.yml "$@"; }

# leftovers: every container, volume and network of the project, one "kind id" a line.
leftovers() {
    local label="label=com.docker.compose.project=$project"
    docker ps -aq --filter "$label" | sed 's/^/container /'
    { docker volume ls -q --filter "$label"; docker volume ls -q --filter "name=${project}_"; } | sort -u | sed 's/^/volume /'
    { docker network ls -q --filter "$label"; docker network ls -q --filter "name=${project}_"; } | sort -u | sed 's/^/network /'
}

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
        say "${compose_cmd[*]} down -v --remove-orphans"
        compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || say "warning: down failed"
        local left kind id
        left="$(leftovers)"
        if [[ -n $left ]]; then
            say "FAIL: left behind after down (removing them now):"
            sed 's/^/    /' <<<"$left"
            while read -r kind id; do
                case $kind in
                    container) docker rm -f -v "$id" >/dev/null 2>&1 ;;
                    volume) docker volume rm -f "$id" >/dev/null 2>&1 ;;
                    network) docker network rm "$id" >/dev/null 2>&1 ;;
                esac
            done <<<"$left"
            [[ -z "$(leftovers)" ]] || say "warning: could not remove everything: $(leftovers | tr '\n' ' ')"
            [[ $rc != 0 ]] || rc=1
        else
            passed=$((passed + 1))
            say "ok: nothing of project $project left (containers, volumes, networks)"
        fi
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
    ROOKERY_IMAGE_PROFILE="$profile" scripts/docker-image.sh
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
# Hosts start once placement and PostgreSQL are healthy, apps once their host is (depends_on).
if ! compose up -d 2>&1 | sed 's/^/    /'; then
    fail "${compose_cmd[*]} up failed"
fi

# health NAME...: "service health" for the given services' containers (health: healthy,
# unhealthy, starting, or the container's state when it is not running).
health() {
    local service id
    for service in "$@"; do
        id="$(compose ps -q "$service" 2>/dev/null)"
        if [[ -z $id ]]; then
            echo "$service missing"
            continue
        fi
        echo "$service $(docker inspect --format '{{if ne .State.Status "running"}}{{.State.Status}}{{else if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}' "$id" 2>/dev/null)"
    done
}

# wait_healthy WHAT SERVICE...: polls until every SERVICE's container is running and its health
# check passes (containers without one: running); the deadline fails.
wait_healthy() {
    local what=$1 deadline=$((SECONDS + timeout_s)) states=""
    shift
    while ((SECONDS < deadline)); do
        states="$(health "$@")"
        if ! grep -qv ' \(healthy\|running\)$' <<<"$states"; then
            return 0
        fi
        sleep 1
    done
    say "health: $(tr '\n' ',' <<<"$states")"
    fail "timed out after ${timeout_s}s waiting for: $what"
}

services=(postgres placement-1 placement-2 placement-3 host-1 host-2 host-3 counter-1 counter-2 counter-3)
wait_healthy "every container running and healthy" "${services[@]}"
pass "every container up, health checks pass: $(health "${services[@]}" | awk '$2 == "healthy" { n++ } END { print n + 0 }') healthy (placement, hosts, postgres)"

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

# --- 4. a reminder fires ----------------------------------------------------------------------------
# Every firing of any reminder of a counter adds 1 to it (examples/counter.rs): 3 firings, 3.
reminder="$("$rookery" reminders create Counter/r1 tick --due PT1S --period R3/PT1S --host "$host_addr" 2>&1)" ||
    fail "reminders create Counter/r1 tick: $reminder"
say "reminder created: $reminder"
deadline=$((SECONDS + timeout_s))
while :; do
    call Counter/r1 get
    [[ $reply == 3 ]] && break
    [[ $reply =~ ^[0-2]$ ]] || fail "Counter/r1 after its reminder (3 firings): got '$reply'"
    ((SECONDS < deadline)) || fail "Counter/r1 counted $reply of the 3 firings within ${timeout_s}s"
    sleep 1
done
pass "reminder Counter/r1 tick fired 3 times: the counter is 3"

# values: the counters' expected values, checked after each fault.
declare -A values=([r1]=3)
for i in "${!actors[@]}"; do
    values[${actors[$i]}]=$((2 * (i + 1)))
done
# check_all WHEN: every counter answers with its value.
check_all() {
    local id
    for id in "${!values[@]}"; do
        call "Counter/$id" get
        expect_eq "$reply" "${values[$id]}" "Counter/$id $1"
    done
}

# --- 5. placement leader failure ------------------------------------------------------------------
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
check_all "after the placement fail-over"
call Counter/after-failover increment '{"by":5}'
expect_eq "$reply" 5 "a new counter after the fail-over"
call Counter/after-failover increment '{"by":5}'
expect_eq "$reply" 10 "a new counter after the fail-over"
values[after-failover]=10
pass "calls after the fail-over: all ${#values[@]} counters kept their value, a new one counts"

say "docker start placement-$leader"
docker start "$victim" >/dev/null
wait_for "placement-$leader rejoins: 3 reachable members and a leader" \
    's["leader"] is not None and len(reachable) == 3'
pass "placement-$leader rejoined as $(query "[m[\"raft_state\"] for m in s[\"members\"] if m[\"id\"] == $leader][0]" <<<"$last_status") (leader placement-$(query 's["leader"]' <<<"$last_status"))"

# --- 6. a host dies: its actors move, with their state ---------------------------------------------
victim="$(compose ps -q host-2)"
[[ -n $victim ]] || fail "no container for host-2"
say "docker kill host-2"
docker kill "$victim" >/dev/null
wait_for "host-2 removed: 2 connected hosts with type Counter" \
    'len({h["id"] for h in counter_hosts}) == 2 and not any(h["id"].startswith("host-2") for h in counter_hosts)'
check_all "after host-2 died"
call Counter/c1 increment '{"by":1}'
expect_eq "$reply" 3 "Counter/c1 counts on after host-2 died"
values[c1]=3
pass "host-2 killed: all ${#values[@]} counters (the reminder's one too) answer with their values from the remaining hosts"
say "docker start host-2"
docker start "$victim" >/dev/null
wait_for "host-2 rejoins: 3 connected hosts with type Counter" \
    'len({h["id"] for h in counter_hosts}) == 3'
check_all "after host-2 rejoined"
pass "host-2 rejoined; values unchanged"

# --- 7. a placement node cut off the network, then back ---------------------------------------------
wait_for "a placement leader and 3 reachable members" 's["leader"] is not None and len(reachable) == 3'
cut="$(query 's["leader"]' <<<"$last_status")"
victim="$(compose ps -q "placement-$cut")"
[[ -n $victim ]] || fail "no container for placement-$cut"
network="$(docker inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{"\n"}}{{end}}' "$victim" | grep -x "${project}_rookery")" ||
    fail "placement-$cut is not on the network ${project}_rookery"
say "docker network disconnect $network placement-$cut (the leader)"
docker network disconnect "$network" "$victim"
cut_at=$SECONDS
# Its published port goes with the network: from here it is unreachable, as from its peers.
wait_for "a leader other than placement-$cut among the 2 connected nodes" \
    "s[\"leader\"] not in (None, $cut) and len(reachable) == 2"
pass "placement-$cut cut off: placement-$(query 's["leader"]' <<<"$last_status") leads (term $(query 's["term"]' <<<"$last_status")) $((SECONDS - cut_at))s later"
# What the cut-off node says of itself (not checked: an old leader cut off keeps naming itself
# leader in /readyz until it hears of a newer term).
say "placement-$cut's own /readyz while cut off: $(docker exec "$victim" /usr/local/bin/rookery probe http://127.0.0.1:8080/readyz 2>&1 | tail -n 1 | sed 's/^ *//')"
wait_for "3 connected hosts with type Counter while placement-$cut is cut off" \
    'len({h["id"] for h in counter_hosts}) == 3'
check_all "while placement-$cut is cut off"
call Counter/during-partition increment '{"by":7}'
expect_eq "$reply" 7 "a new counter while placement-$cut is cut off"
values[during-partition]=7
pass "while placement-$cut is cut off: all counters answer with their values, a new one counts"

say "docker network connect $network placement-$cut"
docker network connect --alias "placement-$cut" "$network" "$victim"
wait_for "placement-$cut reachable again and a leader" 's["leader"] is not None and len(reachable) == 3'
# Caught up: it has applied every entry the leader had applied when it came back.
target="$(query '[m["last_applied_index"] for m in s["members"] if m["id"] == s["leader"]][0]' <<<"$last_status")"
wait_for "placement-$cut catches up with the leader's log (applied index >= $target)" \
    "s[\"leader\"] is not None and len(reachable) == 3 and all((m[\"last_applied_index\"] or 0) >= $target for m in s[\"members\"])"
deadline=$((SECONDS + timeout_s))
until probe="$(docker exec "$victim" /usr/local/bin/rookery probe http://127.0.0.1:8080/readyz 2>&1)"; do
    ((SECONDS < deadline)) || fail "placement-$cut not ready ${timeout_s}s after it was reconnected: $probe"
    sleep 1
done
wait_healthy "placement-$cut healthy again" "placement-$cut"
pass "placement-$cut reconnected: $(query "[m[\"raft_state\"] for m in s[\"members\"] if m[\"id\"] == $cut][0]" <<<"$last_status"), applied index >= $target, healthy (leader placement-$(query 's["leader"]' <<<"$last_status"))"
check_all "after placement-$cut reconnected"
pass "after every fault: all ${#values[@]} counters answer with their values"
