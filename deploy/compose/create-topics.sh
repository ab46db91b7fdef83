#!/usr/bin/env bash
# Create every topic suitcase uses, once (idempotent: --if-not-exists), with the policies
# the workers rely on. Run by the `topics` job of compose.yaml (apache/kafka image).
#
# - The contract's input topics get $PARTITIONS partitions each. The three crossing topics
#   MUST have equal partition counts: a crossing's departure, declaration and inspections
#   meet only in partition murmur2(crossing_id) % N of each topic.
# - suitcase.deadletter keeps the refused records (original bytes) $DEADLETTER_RETENTION_MS.
# - suitcase.estimates and the internal state topics of app $APP_ID are compacted.
set -euo pipefail
: "${BOOTSTRAP:?}" "${APP_ID:=suitcase}" "${PARTITIONS:=6}" "${REPLICATION:=3}"
: "${DEADLETTER_RETENTION_MS:=2592000000}"   # 30 days
kafka_topics=/opt/kafka/bin/kafka-topics.sh
auth=()
if [ -n "${COMMAND_CONFIG:-}" ]; then auth=(--command-config "$COMMAND_CONFIG"); fi

create() {  # name partitions [--config k=v ...]
  local name=$1 partitions=$2; shift 2
  "$kafka_topics" --bootstrap-server "$BOOTSTRAP" "${auth[@]}" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor "$REPLICATION" \
    --config min.insync.replicas=2 "$@"
}

# The contract (streams/pipeline/contract.py TOPICS); co-partitioned crossing topics first.
for topic in border.departures travellers.declarations customs.inspections \
             customs.exports payments.transactions fx.rates; do
  create "$topic" "$PARTITIONS"
done
create suitcase.deadletter "$PARTITIONS" --config cleanup.policy=delete \
  --config retention.ms="$DEADLETTER_RETENTION_MS"
create suitcase.estimates "$PARTITIONS" --config cleanup.policy=compact
# Internal topics (streams/kafka/tables.py): the state changelog is co-partitioned with the
# lanes and read whole by every worker (each step's record carries its observations).
create "$APP_ID-partition-state-changelog" "$PARTITIONS" --config cleanup.policy=compact
create "$APP_ID-__assignor-__leader" 1 --config cleanup.policy=compact

# Refuse to go on when the crossing topics disagree (e.g. one was resized by hand).
counts=$(for topic in border.departures travellers.declarations customs.inspections; do
  "$kafka_topics" --bootstrap-server "$BOOTSTRAP" "${auth[@]}" --describe --topic "$topic" \
    | grep -o 'PartitionCount: *[0-9]*' | grep -o '[0-9]*$'
done | sort -u)
if [ "$(echo "$counts" | wc -l)" != 1 ]; then
  echo "create-topics: the crossing topics have different partition counts: $counts" >&2
  exit 1
fi
echo "create-topics: topics ready ($counts partitions per crossing topic)"
