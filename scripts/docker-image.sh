#!/usr/bin/env bash
# Builds the container image rookery:dev FROM scratch, from this project alone (no registry):
#   1. release binaries (or debug ones: ROOKERY_IMAGE_PROFILE): `rookery`, and the `counter`
#      example app when examples/counter.rs exists;
#   2. a build context in target/docker/context: the binaries (debug info stripped, symbols kept
#      for backtraces) in /usr/local/bin, every shared library they link at the path ldd gives
#      (the dynamic loader included), a few /etc files, /tmp and /data; every file's mtime is set
#      to the last commit's time, so the same binaries give the same layers;
#   3. docker build with docker/Dockerfile;
#   4. rookery-postgres:dev, the compose cluster's state store, FROM scratch as well, from this
#      machine's Debian postgresql-15 package (installed here when missing): the server
#      binaries, their modules and share files, zoneinfo, /bin/sh and every library they link,
#      with docker/postgres/Dockerfile.
#
# Environment:
#   ROOKERY_IMAGE                  image tag (default rookery:dev)
#   ROOKERY_IMAGE_PROFILE          release (default) or debug: the cargo profile of the binaries.
#                                  debug takes target/debug/{rookery,examples/counter} from a
#                                  test build (`cargo test --workspace --no-run`: after
#                                  scripts/test.sh only the example's executable is linked, in
#                                  seconds); their debug info is stripped too, as for release
#   ROOKERY_IMAGE_WITHOUT_COUNTER  1: leave the counter example out (docker-compose.yml needs it)
#   ROOKERY_POSTGRES_IMAGE         tag of the PostgreSQL image (default rookery-postgres:dev)
#   ROOKERY_IMAGE_WITHOUT_POSTGRES 1: do not build the PostgreSQL image
#   SOURCE_DATE_EPOCH              mtime of the context's files (default: last commit's time)
set -euo pipefail
cd "$(dirname "$0")/.."

image="${ROOKERY_IMAGE:-rookery:dev}"
context=target/docker/context
rootfs="$context/rootfs"

say() { printf 'docker-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is dockerd running?)"

# 1. The binaries. One cargo invocation at a time: the machine is small.
profile="${ROOKERY_IMAGE_PROFILE:-release}"
with_counter=0
[[ -f examples/counter.rs && "${ROOKERY_IMAGE_WITHOUT_COUNTER:-0}" != 1 ]] && with_counter=1
case "$profile" in
    release)
        cargo build --release --locked --bin rookery
        [[ $with_counter == 0 ]] || cargo build --release --locked --example counter
        ;;
    debug)
        # A test build, so the workspace's features are unified as in the test run and its
        # dependencies are reused (`cargo build` would resolve some differently and rebuild
        # them). Without target flags, `cargo test` builds examples as executables
        # (target/debug/examples/counter); with `--all-targets` it builds them as tests.
        cargo test --workspace --locked --no-run
        ;;
    *) die "ROOKERY_IMAGE_PROFILE is release or debug, not '$profile'" ;;
esac
say "$profile binaries"
binaries=("target/$profile/rookery")
if [[ $with_counter == 1 ]]; then
    binaries+=("target/$profile/examples/counter")
else
    say "building without the counter example app"
fi

# 2. The context, from nothing each time.
rm -rf "$context"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$context/owned/data"
chmod 1777 "$rootfs/tmp"
chmod 0755 "$context/owned" "$context/owned/data"

# copy_libraries ROOTFS FILE...: every shared library FILE links, at the path ldd gives.
copy_libraries() {
    local root=$1 file ldd_output path
    shift
    declare -A libraries=()
    for file in "$@"; do
        # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2
        # (0x...)" for the loader, "linux-vdso.so.1 (0x...)" (in the kernel: nothing to copy).
        ldd_output="$(ldd "$file" 2>&1)" || die "ldd $file failed: $ldd_output"
        if grep -q 'not found' <<<"$ldd_output"; then
            die "$file links a library that is not installed: $ldd_output"
        fi
        while read -r path; do
            libraries["$path"]=1
        done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_output")
    done
    [[ ${#libraries[@]} -gt 0 ]] || die "ldd found no shared library, not even the loader"
    for path in "${!libraries[@]}"; do
        mkdir -p "$root$(dirname "$path")"
        # -L: the file itself where the path is a symlink (/lib64/ld-linux-x86-64.so.2 on Debian).
        cp -L "$path" "$root$path"
        chmod 0755 "$root$path"
    done
}

for binary in "${binaries[@]}"; do
    name="$(basename "$binary")"
    objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/$name"
    chmod 0755 "$rootfs/usr/local/bin/$name"
done
copy_libraries "$rootfs" "${binaries[@]}"

# Name resolution without a shell or ld.so.cache: glibc's files and dns modules are built into
# libc.so.6 (glibc >= 2.34), and Docker mounts /etc/hosts and /etc/resolv.conf at run time.
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\nrookery:x:65532:65532:rookery:/data:/sbin/nologin\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nrookery:x:65532:\n' >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/nsswitch.conf" "$rootfs/etc/passwd" "$rootfs/etc/group"

cp docker/Dockerfile "$context/Dockerfile"
chmod 0644 "$context/Dockerfile"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
find "$context" -exec touch -h -d "@$epoch" {} +

# 3. The image.
say "context: $(du -sh "$context" | cut -f1) in $context"
docker build --tag "$image" "$context"
size="$(docker image inspect --format '{{.Size}}' "$image")"
say "built $image: $((size / 1000000)) MB ($size bytes)"

# 4. The PostgreSQL image.
if [[ "${ROOKERY_IMAGE_WITHOUT_POSTGRES:-0}" == 1 ]]; then
    exit 0
fi
pg_image="${ROOKERY_POSTGRES_IMAGE:-rookery-postgres:dev}"
pg=/usr/lib/postgresql/15
if [[ ! -x $pg/bin/postgres ]]; then
    say "installing Debian's postgresql-15 for the PostgreSQL image"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
pg_context=target/docker/postgres
pg_root="$pg_context/rootfs"
rm -rf "$pg_context"
mkdir -p "$pg_root$pg/bin" "$pg_root$pg/lib" "$pg_root/usr/share/postgresql" "$pg_root/usr/share" \
    "$pg_root/usr/local/bin" "$pg_root/bin" "$pg_root/etc" "$pg_root/tmp" "$pg_context/owned/data"
chmod 1777 "$pg_root/tmp"
chmod 0755 "$pg_context/owned" "$pg_context/owned/data"
cp -L "$pg/bin/postgres" "$pg/bin/initdb" "$pg_root$pg/bin/"
# Server modules, less the JIT (it links all of LLVM; the entry point runs with jit=off).
modules=()
for module in "$pg"/lib/*.so; do
    case "$(basename "$module")" in llvmjit*) continue ;; esac
    cp -L "$module" "$pg_root$pg/lib/"
    modules+=("$module")
done
cp -r /usr/share/postgresql/15 "$pg_root/usr/share/postgresql/15"
cp -r /usr/share/zoneinfo "$pg_root/usr/share/zoneinfo"
cp -L /bin/sh "$pg_root/bin/sh"
copy_libraries "$pg_root" "$pg/bin/postgres" "$pg/bin/initdb" /bin/sh "${modules[@]}"
cp docker/postgres/entrypoint.sh "$pg_root/usr/local/bin/postgres-entrypoint"
chmod 0755 "$pg_root/usr/local/bin/postgres-entrypoint"
printf 'root:x:0:0:root:/root:/sbin/nologin\npostgres:x:999:999:postgres:/data:/sbin/nologin\n' \
    >"$pg_root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$pg_root/etc/group"
printf 'hosts: files dns\n' >"$pg_root/etc/nsswitch.conf"
chmod 0644 "$pg_root/etc/passwd" "$pg_root/etc/group" "$pg_root/etc/nsswitch.conf"
cp docker/postgres/Dockerfile "$pg_context/Dockerfile"
find "$pg_context" -exec touch -h -d "@$epoch" {} +
say "context: $(du -sh "$pg_context" | cut -f1) in $pg_context"
docker build --tag "$pg_image" "$pg_context"
size="$(docker image inspect --format '{{.Size}}' "$pg_image")"
say "built $pg_image: $((size / 1000000)) MB ($size bytes)"
