#!/usr/bin/env bash
# make demo: start the vendor simulator, the workers and callback-ingress against the local RabbitMQ and
# PostgreSQL, publish a sample batch, sign a few PDFs, print a summary, and stop everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$HOME/.cache/pasarela-target}/debug"
logs="${CARGO_TARGET_DIR:-$HOME/.cache/pasarela-target}/demo-logs"
mkdir -p "$logs"
export PASARELA_NAMESPACE="${PASARELA_NAMESPACE:-demo}"
# The vendors are the simulator: its demo credentials stand in for every vendor setting left unset.
export PASARELA_PROFILE=demo
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
export SIGNING_BASE_URL="http://$addr/signing"
# A demo secret for signing client webhooks (the Standard Webhooks spec's example); a real deployment
# sets its own whsec_ + Base64 of random bytes.
export PASARELA_WEBHOOK_SECRET="${PASARELA_WEBHOOK_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"
echo "vendor simulator on http://$addr (inbox: http://$addr/sim/inbox, calls: http://$addr/sim/stats)"

# callback-ingress receives the simulator's signing webhooks, so it starts (and is ready) before doc-sign
# hands the simulator its URL. Free loopback ports for it and for its /readyz.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ingress_port=$(free_port)
ingress_metrics_port=$(free_port)
export PASARELA_INGRESS_ADDR="127.0.0.1:$ingress_port"
export PASARELA_INGRESS_PUBLIC_URL="http://127.0.0.1:$ingress_port"
PASARELA_METRICS_ADDR="127.0.0.1:$ingress_metrics_port" RUST_LOG=warn,pasarela_shared=info \
  "$bin/callback-ingress" > "$logs/callback-ingress.log" 2>&1 &
pids+=($!)
ready="http://127.0.0.1:$ingress_metrics_port/readyz"
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "$ready" && break
  sleep 0.1
done
curl -sf -o /dev/null "$ready" || { echo "callback-ingress is not ready; see $logs/callback-ingress.log"; exit 1; }
echo "callback-ingress on $PASARELA_INGRESS_PUBLIC_URL (log: $logs/callback-ingress.log)"

for worker in otp-send otp-verify vendor-call doc-sign doc-callback; do
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

# Document signing: a few small PDFs through doc-sign, the simulator's webhook, callback-ingress and
# doc-callback. `pasarela doc sign --wait` prints the document_id, then its status, and exits 0 only
# when the document is signed.
echo
echo "Signing documents (pasarela doc sign <file> --user demo.signer@company.com --tenant demo --wait):"
docs="${DEMO_DOCUMENTS:-3}"
signed=0
last_id=""
for i in $(seq 1 "$docs"); do
  pdf="$logs/demo-contract-$i.pdf"
  python3 - "$pdf" "$i" <<'PDF'
import sys
path, n = sys.argv[1], sys.argv[2]
text = f"pasarela demo contract {n}".encode()
stream = b"BT /F1 18 Tf 72 720 Td (" + text + b") Tj ET"
objects = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
    b" /Resources << /Font << /F1 5 0 R >> >> >>",
    b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
]
out = bytearray(b"%PDF-1.4\n")
offsets = []
for number, body in enumerate(objects, 1):
    offsets.append(len(out))
    out += str(number).encode() + b" 0 obj\n" + body + b"\nendobj\n"
xref = len(out)
out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
for offset in offsets:
    out += f"{offset:010d} 00000 n \n".encode()
out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
with open(path, "wb") as f:
    f.write(out)
PDF
  doc_status=0
  out=$("$bin/pasarela" doc sign "$pdf" --user demo.signer@company.com --tenant demo --wait --timeout 60s) \
    || doc_status=$?
  id=$(printf '%s\n' "$out" | head -n1)
  [ -n "$id" ] && last_id="$id"
  state=$(printf '%s\n' "$out" | awk '$1 == "state" {print $2; exit}')
  echo "  $(basename "$pdf"): ${id:-not published} ${state:-no status} (exit $doc_status)"
  if [ "$doc_status" -eq 0 ]; then
    signed=$((signed + 1))
  else
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
done
echo "documents signed $signed of $docs"
if [ "$signed" -ne "$docs" ] && [ "$status" -eq 0 ]; then status=1; fi
if [ -n "$last_id" ]; then
  echo
  echo "The last document (pasarela doc status $last_id):"
  "$bin/pasarela" doc status "$last_id" || status=$?
fi
exit $status
