#!/usr/bin/env bash
# make demo: start the vendor simulator and the workers against the local RabbitMQ and PostgreSQL,
# publish a sample batch, print a summary, and stop everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$HOME/.cache/pasarela-target}/debug"
logs="${CARGO_TARGET_DIR:-$HOME/.cache/pasarela-target}/demo-logs"
mkdir -p "$logs"
export PASARELA_NAMESPACE="${PASARELA_NAMESPACE:-demo}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pasarela_demo}"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
count="${DEMO_COUNT:-200}"

# Say which service is missing and how to start it, instead of a stack trace. Where Docker runs and the
# local services do not, the compose file's RabbitMQ and PostgreSQL stand in.
if ! "$bin/pasarela" check; then
  if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "starting RabbitMQ and PostgreSQL with docker compose"
    docker compose up -d --wait rabbitmq postgres
    export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/pasarela_demo"
    "$bin/pasarela" check || exit 1
  else
    echo
    echo "make demo needs RabbitMQ and PostgreSQL (see above), or Docker: docker compose up -d rabbitmq postgres"
    exit 1
  fi
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# The simulator picks a free port and prints it on its first line.
VENDOR_SIM_ADDR=127.0.0.1:0 "$bin/vendor-sim" > "$logs/vendor-sim.out" 2> "$logs/vendor-sim.log" &
pids+=($!)
for _ in $(seq 1 100); do
  addr=$(head -n1 "$logs/vendor-sim.out" 2>/dev/null | awk '{print $NF}')
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "vendor-sim did not start; see $logs/vendor-sim.log"; exit 1; }
export DANACONNECT_BASE_URL="http://$addr/danaconnect/otp/1.0"
export ALDEAMO_BASE_URL="http://$addr/aldeamo"
export NUMROT_BASE_URL="http://$addr/numrot"
export GESTOPAGO_BASE_URL="http://$addr/gestopago"
# A demo key for the stored vendor tokens; a real deployment sets its own (openssl rand -base64 32).
export PASARELA_SECRET_KEY="${PASARELA_SECRET_KEY:-MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}"
echo "vendor simulator on http://$addr (inbox: http://$addr/sim/inbox, calls: http://$addr/sim/stats)"

for worker in otp-send otp-verify vendor-call; do
  PASARELA_METRICS_ADDR=127.0.0.1:0 RUST_LOG=warn,pasarela_shared=info \
    "$bin/$worker" > "$logs/$worker.log" 2>&1 &
  pids+=($!)
  echo "$worker worker started (log: $logs/$worker.log)"
done

status=0
"$bin/pasarela" demo --count "$count" --timeout 120 --sim-url "http://$addr" --vendor-calls 20 || status=$?
echo
echo "OTP report of this run's tenant (pasarela report otp --tenant demo --since 15m --limit 5):"
"$bin/pasarela" report otp --tenant demo --since 15m --limit 5 || status=$?
exit $status
