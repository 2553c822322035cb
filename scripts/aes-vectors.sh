#!/usr/bin/env bash
# Regenerates shared/testdata/aes-256-cbc.tsv: known-answer vectors for GestoPago's payload cipher made
# by an independent implementation (the openssl command line), which the unit tests check pasarela's
# cipher against.
set -euo pipefail
cd "$(dirname "$0")/.."
key_text='pasarela-gestopago-demo-key-32by'
iv_text='pasarela-demo-iv'
key=$(printf '%s' "$key_text" | od -An -tx1 | tr -d ' \n')
iv=$(printf '%s' "$iv_text" | od -An -tx1 | tr -d ' \n')
out=shared/testdata/aes-256-cbc.tsv
multi_kb=$(printf '{"items":['; for i in $(seq 0 79); do
  [ "$i" -gt 0 ] && printf ', '
  printf '{"sku": "SKU-%05d", "qty": %d, "note": "pago de servicio ñandú"}' "$i" $((i % 7))
done; printf ']}')
{
  echo "# AES-256-CBC, PKCS#7, Base64: vectors made by openssl enc -aes-256-cbc -K <key> -iv <iv>"
  echo "# (scripts/aes-vectors.sh). Key and IV are the simulator's demo values, as text:"
  echo "# GESTOPAGO_AES_KEY=$key_text GESTOPAGO_AES_IV=$iv_text"
  echo "# name<TAB>plaintext as base64<TAB>ciphertext as base64"
  for case in "empty:" "one:{" 'fifteen:{"a":"0123456"}' 'sixteen:{"a":"01234567"}' \
              'seventeen:{"a":"012345678"}' "multi_kb:$multi_kb"; do
    name=${case%%:*}
    plain=${case#*:}
    printf '%s\t%s\t%s\n' "$name" \
      "$(printf '%s' "$plain" | base64 -w0)" \
      "$(printf '%s' "$plain" | openssl enc -aes-256-cbc -K "$key" -iv "$iv" -base64 -A)"
  done
} > "$out"
echo "wrote $out"
