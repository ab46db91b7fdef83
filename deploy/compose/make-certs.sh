#!/usr/bin/env bash
# Throwaway CA, broker keystores and passwords for compose.tls.yaml. NOT for production:
# use your own CA (or cert-manager / Strimzi on Kubernetes).
#
#   deploy/compose/make-certs.sh [OUT_DIR]      # default deploy/compose/secrets
#   source deploy/compose/secrets/env           # SUITCASE_KAFKA_SASL_PASSWORD for compose
#
# Writes: ca.crt/ca.key (the CA; clients set ssl.cafile to ca.crt), kafka-N.keystore.p12
# (broker key and certificate, SAN kafka-N and localhost), admin.keystore.p12 (the admin
# job's client certificate, CN=admin), truststore.p12 (the CA), the *.password credential
# files the apache/kafka image reads, admin.properties (client config of the admin job)
# and env (the SCRAM password of user suitcase). Needs openssl and keytool (any JDK).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/secrets}"
days=30
mkdir -p "$out"
cd "$out"
umask 077
rand() { openssl rand -hex 24; }
store_pw=$(rand)
printf '%s' "$store_pw" > keystore.password
printf '%s' "$store_pw" > truststore.password

openssl req -x509 -newkey rsa:3072 -sha256 -days "$days" -nodes -keyout ca.key -out ca.crt \
  -subj "/CN=suitcase-throwaway-ca" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null

issue() {  # name san
  local name=$1 san=$2
  openssl req -newkey rsa:3072 -sha256 -nodes -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  openssl pkcs12 -export -in "$name.crt" -inkey "$name.key" -certfile ca.crt -name "$name" \
    -passout "pass:$store_pw" -out "$name.keystore.p12"
  rm -f "$name.csr" "$name.ext"
}
for n in 1 2 3; do issue "kafka-$n" "DNS:kafka-$n,DNS:localhost"; done
issue admin "DNS:admin"

rm -f truststore.p12
keytool -importcert -noprompt -alias ca -file ca.crt -storetype PKCS12 \
  -keystore truststore.p12 -storepass "$store_pw" >/dev/null 2>&1

cat > admin.properties <<PROPS
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/kafka/secrets/admin.keystore.p12
ssl.keystore.password=$store_pw
ssl.truststore.type=PKCS12
ssl.truststore.location=/etc/kafka/secrets/truststore.p12
ssl.truststore.password=$store_pw
PROPS
printf 'export SUITCASE_KAFKA_SASL_PASSWORD=%s\n' "$(rand)" > env
# The brokers run as uid 1000 (appuser) and read these through a read-only bind mount.
chmod 0644 ./*.p12 ./*.password ./*.crt admin.properties
echo "make-certs: wrote $out (CA valid $days days); now: source $out/env"
