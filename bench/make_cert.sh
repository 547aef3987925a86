#!/usr/bin/env bash
# A private CA and a server certificate (P-256) for the NTS benchmarks:
#   bash bench/make_cert.sh DIR SAN   # SAN: IP:127.0.0.1 or DNS:hora.test
# writes DIR/ca.pem (what clients trust), DIR/chain.pem and DIR/key.pem.
set -euo pipefail
d=$1; san=$2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" \
  -days 2 -subj "/CN=hora bench CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/key.pem" -out "$d/csr" \
  -subj "/CN=${san#*:}" 2>/dev/null
printf "subjectAltName=%s\nbasicConstraints=CA:FALSE\n" "$san" > "$d/ext"
openssl x509 -req -in "$d/csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -out "$d/chain.pem" \
  -days 2 -extfile "$d/ext" 2>/dev/null
