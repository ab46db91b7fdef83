"""The Kafka-free path shared by live and batch: decode, validate, deduplicate, join, price, observe."""
