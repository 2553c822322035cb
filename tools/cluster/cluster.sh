#!/usr/bin/env bash
# A three-node RabbitMQ cluster on loopback for `make cluster`: nodes pasarela-1..3@localhost on AMQP
# ports 5701..5703, their data under $CLUSTER_DIR. Quorum queues declared on it are replicated on all
# three nodes. Usage: cluster.sh start | stop | stop-node N | start-node N | leader QUEUE | urls
set -euo pipefail

CLUSTER_DIR=${CLUSTER_DIR:-/tmp/pasarela-cluster}
NODES=(1 2 3)

node_name() { echo "pasarela-$1@localhost"; }
amqp_port() { echo $((5700 + $1)); }
dist_port() { echo $((25700 + $1)); }

# Runs a RabbitMQ command as the broker's user, with the environment of node $1.
as_node() {
  local n=$1; shift
  local base="$CLUSTER_DIR/node-$n"
  env \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT="$(dist_port "$n")" \
    RABBITMQ_MNESIA_BASE="$base/mnesia" \
    RABBITMQ_LOG_BASE="$base/log" \
    RABBITMQ_PID_FILE="$base/pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$base/rabbitmq" \
    RABBITMQ_ALLOW_INPUT=false \
    "$@"
}

start_node() {
  local n=$1 base="$CLUSTER_DIR/node-$n"
  mkdir -p "$base/mnesia" "$base/log"
  echo "[]." > "$base/enabled_plugins"
  # guest may connect from loopback only, which is where every client is.
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$(amqp_port "$n")" > "$base/rabbitmq.conf"
  chown -R rabbitmq:rabbitmq "$base"
  as_node "$n" rabbitmq-server -detached
  # await_startup needs the node registered with epmd first: ask until it is.
  for _ in $(seq 120); do
    if as_node "$n" rabbitmqctl -n "$(node_name "$n")" await_startup --timeout 60 >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "node $(node_name "$n") did not start; see $base/log" >&2
  return 1
}

case "${1:-}" in
  start)
    mkdir -p "$CLUSTER_DIR"
    for n in "${NODES[@]}"; do
      as_node "$n" rabbitmqctl -n "$(node_name "$n")" ping >/dev/null 2>&1 || start_node "$n"
    done
    for n in 2 3; do
      as_node "$n" rabbitmqctl -n "$(node_name "$n")" stop_app >/dev/null
      as_node "$n" rabbitmqctl -n "$(node_name "$n")" join_cluster "$(node_name 1)" >/dev/null
      as_node "$n" rabbitmqctl -n "$(node_name "$n")" start_app >/dev/null
    done
    as_node 1 rabbitmqctl -n "$(node_name 1)" cluster_status --formatter json \
      | python3 -c 'import json,sys; s=json.load(sys.stdin); print("running nodes:", " ".join(s["running_nodes"]))'
    echo "AMQP_URL=$("$0" urls)"
    ;;
  stop)
    for n in "${NODES[@]}"; do as_node "$n" rabbitmqctl -n "$(node_name "$n")" stop >/dev/null 2>&1 || true; done
    rm -rf "$CLUSTER_DIR"
    ;;
  stop-node) as_node "$2" rabbitmqctl -n "$(node_name "$2")" stop_app >/dev/null ;;
  start-node) as_node "$2" rabbitmqctl -n "$(node_name "$2")" start_app >/dev/null ;;
  leader)
    as_node 1 rabbitmq-queues -n "$(node_name 1)" quorum_status "$2" --formatter json 2>/dev/null \
      | python3 -c 'import json,sys; rows=json.load(sys.stdin); print(next(r["Node Name"] for r in rows if r["Raft State"]=="leader"))'
    ;;
  urls)
    printf 'amqp://guest:guest@127.0.0.1:%s/%%2f,' 5701 5702 5703 | sed 's/,$//'; echo
    ;;
  *) echo "usage: $0 start | stop | stop-node N | start-node N | leader QUEUE | urls" >&2; exit 2 ;;
esac
