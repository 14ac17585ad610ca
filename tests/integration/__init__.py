"""Integration tests against the real Kafka broker named by EXW_KAFKA_BOOTSTRAP."""
