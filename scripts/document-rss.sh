#!/usr/bin/env bash
# Peak memory of the signing workers for one large document: starts the simulator, callback-ingress,
# doc-sign and doc-callback (the last two under /usr/bin/time -v), signs one PDF of SIZE_MIB
# (default 20) with `pasarela doc sign --wait`, stops them, and prints each worker's peak RSS beside the
# document's size. Uses the local RabbitMQ and PostgreSQL, and a namespace and database of its own.
#
#   scripts/document-rss.sh            # debug binaries (as make demo)
#   PROFILE=release scripts/document-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-debug}"
bin="${CARGO_TARGET_DIR:-$HOME/.cache/pasarela-target}/$profile"
size_mib="${SIZE_MIB:-20}"
work="$(mktemp -d)"
run="rss$(date +%s)"
export PASARELA_NAMESPACE="$run"
export PASARELA_PROFILE=demo  # the vendors are the simulator
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/pasarela_$run"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export PASARELA_SECRET_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
export PASARELA_WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
export PASARELA_METRICS_ADDR=127.0.0.1:0
export PASARELA_SIGNING_POLL_DELAYS=1s
export RUST_LOG=warn

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS pasarela_$run WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

VENDOR_SIM_ADDR=127.0.0.1:0 "$bin/vendor-sim" > "$work/sim.out" 2> "$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do
  addr=$(head -n1 "$work/sim.out" 2>/dev/null | awk '{print $NF}')
  [ -n "$addr" ] && break
  sleep 0.1
done
export SIGNING_BASE_URL="http://$addr/signing"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PASARELA_INGRESS_ADDR="127.0.0.1:$port"
export PASARELA_INGRESS_PUBLIC_URL="http://127.0.0.1:$port"

"$bin/callback-ingress" > "$work/ingress.log" 2>&1 &
pids+=($!)
worker_pids=()
for worker in doc-sign doc-callback; do
  /usr/bin/time -v -o "$work/$worker.time" "$bin/$worker" > "$work/$worker.log" 2>&1 &
  worker_pids+=($!)
done

# A PDF of the requested size: a header, random filler, and a trailer.
python3 - "$work/big.pdf" "$size_mib" <<'EOF'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
head = b"%PDF-1.7\n% pasarela memory check\n"
tail = b"\n%%EOF\n"
with open(path, "wb") as f:
    f.write(head)
    f.write(os.urandom(mib * 1024 * 1024 - len(head) - len(tail)))
    f.write(tail)
EOF
sleep 3
started=$(date +%s.%N)
"$bin/pasarela" doc sign "$work/big.pdf" --user memory.check@company.com --wait --timeout 120s > "$work/sign.out"
ended=$(date +%s.%N)
sleep 2
# SIGTERM goes to each worker, the child of its /usr/bin/time, which then writes its report.
for pid in "${worker_pids[@]}"; do pkill -TERM -P "$pid"; done
for pid in "${worker_pids[@]}"; do wait "$pid" || true; done

bytes=$(stat -c %s "$work/big.pdf")
echo "document: $bytes bytes ($size_mib MiB), base64 in the message: $(( (bytes + 2) / 3 * 4 )) bytes; signed in $(python3 -c "print(round($ended-$started,2))") s ($profile build)"
grep -E '^\s+state' "$work/sign.out" || true
for worker in doc-sign doc-callback; do
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$worker.time")
  python3 -c "kb=$kb; b=$bytes; print(f'$worker: peak RSS {kb/1024:.1f} MiB = {kb*1024/b:.2f}x the document')"
done
