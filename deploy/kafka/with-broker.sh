#!/usr/bin/env bash
# Run CMD with EXW_KAFKA_BOOTSTRAP pointing at a Kafka broker.
#
#   deploy/kafka/with-broker.sh CMD [ARGS...]
#
# If EXW_KAFKA_BOOTSTRAP is already set, CMD runs as is (an external broker,
# e.g. one started with `make kafka-up`). Otherwise a throwaway single-node
# broker is started on a fresh state dir (KAFKA_PORT or 9092; any free loopback
# port if that one is busy), CMD runs with EXW_KAFKA_BOOTSTRAP exported, and the
# broker is stopped and its state dir deleted when this script exits, whatever
# the outcome. The exit status is CMD's (or 1 if the broker cannot start).
set -uo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi
if [ -n "${EXW_KAFKA_BOOTSTRAP:-}" ]; then
    exec "$@"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
broker() { "${PYTHON3:-python3}" "$here/broker.py" "$@"; }

cache="${XDG_CACHE_HOME:-$HOME/.cache}/extraction-watch"
mkdir -p "$cache"
EXW_BROKER_DIR="$(mktemp -d "$cache/throwaway-broker.XXXXXX")" || exit 1
read -r KAFKA_PORT KAFKA_CONTROLLER_PORT < <(broker pick-ports) || exit 1
export EXW_BROKER_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT

watchdog=""
cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$watchdog" ]; then kill "$watchdog" 2>/dev/null; fi
    broker down --purge --timeout 20 || true
    rm -rf "$EXW_BROKER_DIR"  # in case `up` failed before marking the dir
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# If this script is killed outright (SIGKILL, or a SIGTERM it cannot act on while
# CMD runs in the foreground), a watchdog still stops and deletes the broker.
wrapper=$$
(
    trap - EXIT INT TERM HUP
    while kill -0 "$wrapper" 2>/dev/null; do sleep 2; done
    broker down --purge --timeout 20
    rm -rf "$EXW_BROKER_DIR"
) </dev/null >/dev/null 2>&1 &
watchdog=$!

bootstrap="$(broker up | tail -n 1)"
if [ -z "$bootstrap" ]; then
    echo "with-broker: the throwaway Kafka broker did not start" >&2
    exit 1
fi
export EXW_KAFKA_BOOTSTRAP="$bootstrap"
echo "with-broker: EXW_KAFKA_BOOTSTRAP=$EXW_KAFKA_BOOTSTRAP (throwaway broker, state $EXW_BROKER_DIR)" >&2

"$@"
rc=$?
exit "$rc"
