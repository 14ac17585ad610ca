"""The Kafka side of extraction-watch: Faust app, topics, agents, state recovery,
replay of historical topics, health and metrics.

It is wired around the engine in :mod:`models` and is filled by the streaming
pipeline issue; nothing here is needed by the embedded ``replay``/``demo`` path.
"""
