#!/usr/bin/env bash
# SCRAM-SHA-512 user and ACLs of the suitcase workers (TLS variant, compose.tls.yaml).
# Run by the `topics` job over the BROKER listener with the admin certificate.
set -euo pipefail
: "${BOOTSTRAP:?}" "${COMMAND_CONFIG:?}" "${SUITCASE_KAFKA_SASL_PASSWORD:?}" "${APP_ID:=suitcase}"
bin=/opt/kafka/bin
"$bin/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$COMMAND_CONFIG" \
  --alter --entity-type users --entity-name suitcase \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=$SUITCASE_KAFKA_SASL_PASSWORD]"
acl() { "$bin/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$COMMAND_CONFIG" \
  --add --allow-principal User:suitcase "$@"; }
# Read the contract's topics, write the outputs, own the app's internal topics and group.
# Write on the inputs only for the demo feed (compose --profile demo); drop it in production.
for topic in border.departures travellers.declarations customs.inspections customs.exports \
             payments.transactions fx.rates; do
  acl --operation Read --operation Describe --operation Write --topic "$topic"
done
for topic in suitcase.deadletter suitcase.estimates; do
  acl --operation Read --operation Write --operation Describe --topic "$topic"
done
acl --operation All --topic "$APP_ID-" --resource-pattern-type prefixed
acl --operation All --group "$APP_ID" --resource-pattern-type prefixed
acl --operation Describe --operation IdempotentWrite --cluster
echo "create-users: user suitcase and its ACLs ready"
