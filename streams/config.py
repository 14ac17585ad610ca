"""Configuration of the Kafka side, from ``EXW_`` environment variables, loaded once.

Every process of the pipeline (worker, producer, replay, alert tools,
docker-compose services) reads the same variables:

========================== ====================== ==========================================
variable                   default                meaning
========================== ====================== ==========================================
EXW_KAFKA_BOOTSTRAP        127.0.0.1:9092         bootstrap servers, comma separated
EXW_TOPIC_EVENTS           api-calls              api_call v1 records, key = account_id
EXW_TOPIC_RELEASES         model-releases         model_release v1 records
EXW_TOPIC_ALERTS           alerts                 alert v1 records, key = alert_id
EXW_TOPIC_DEAD_LETTERS     api-calls.dlq          dead_letter v1 records
EXW_APP_ID                 extraction-watch       consumer group and prefix of internal topics
EXW_DATA_DIR               ./exw-data             local scratch state of a worker
EXW_WEB_PORT               6066                   /healthz, /readyz, /metrics
EXW_WEB_HOST               127.0.0.1              address the web server binds
EXW_TOPIC_PARTITIONS       4                      partitions of topics the worker creates
EXW_TOPIC_REPLICATION      1                      replication factor of topics it creates
EXW_CHECKPOINT_INTERVAL_S  30                     seconds between state checkpoints
EXW_FETCH_MAX_WAIT_MS      100                    longest a worker's fetch waits at a topic's end
EXW_GROUP_INSTANCE_ID      (none)                 static group membership: a name unique to
                                                  the worker and kept across its restarts
                                                  (``{hostname}`` is replaced by the host's
                                                  name), so a restarted worker takes its
                                                  partitions back at once
EXW_SESSION_TIMEOUT_S      10                     how long the group waits for a silent
                                                  worker before giving its partitions away
EXW_KAFKA_SECURITY_PROTOCOL PLAINTEXT             PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
EXW_KAFKA_SASL_MECHANISM   (none)                 PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
EXW_KAFKA_SASL_USERNAME    (none)
EXW_KAFKA_SASL_PASSWORD    (none)                 never printed
EXW_KAFKA_SSL_CAFILE       (none)                 CA bundle (PEM)
EXW_KAFKA_SSL_CERTFILE     (none)                 client certificate (PEM), for mutual TLS
EXW_KAFKA_SSL_KEYFILE      (none)                 client key (PEM)
========================== ====================== ==========================================

>>> s = Settings.from_env({"EXW_TOPIC_ALERTS": "exw-alerts", "EXW_WEB_PORT": "7000"})
>>> s.topic_alerts, s.web_port, s.bootstrap
('exw-alerts', 7000, '127.0.0.1:9092')
>>> Settings.from_env({"EXW_WEB_PORT": "web"})
Traceback (most recent call last):
...
streams.config.ConfigError: EXW_WEB_PORT must be an integer, got 'web'
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any

__all__ = ["ConfigError", "Settings", "settings", "PREFIX"]

PREFIX = "EXW_"
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class ConfigError(ValueError):
    """A variable has a value the pipeline cannot use."""


@dataclasses.dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    topic_events: str = "api-calls"
    topic_releases: str = "model-releases"
    topic_alerts: str = "alerts"
    topic_dead_letters: str = "api-calls.dlq"
    app_id: str = "extraction-watch"
    data_dir: str = "./exw-data"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    topic_partitions: int = 4
    topic_replication: int = 1
    checkpoint_interval_s: float = 30.0
    # A fetch at the end of a topic waits this long for records. Faust's 1.5 s
    # (aiokafka's 0.5 s) stalled the engine on the hand-off topic about once a
    # second even with records waiting there (measured: 13k events/s end to end
    # with 1.5 s, 23k with 0.1 s) and adds to every alert's latency.
    fetch_max_wait_ms: int = 100
    # Static membership (Kafka's group.instance.id, KIP-345). Without it a worker killed
    # with -9 keeps its partitions until its session times out (10 s), so its restart
    # waits that long; with it the restarted worker, under the same name, gets them back
    # at once. Each live worker needs a name of its own (a second one under a name in use
    # is fenced off), and a worker stopped for good hands its partitions over only when
    # its session times out. "{hostname}" suits a container restarted in place (Docker,
    # a Kubernetes StatefulSet): the name is the container's, unique and kept.
    group_instance_id: str | None = None
    # Kafka's session.timeout.ms for the worker's consumer groups, in seconds: a worker
    # gone silent (killed, frozen, cut off) keeps its partitions this long. A static
    # member restarted within it takes them back without a rebalance.
    session_timeout_s: float = 10.0
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``EXW_*`` variables (``env`` defaults to ``os.environ``); keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = PREFIX + field.name.upper()
            if field.name == "bootstrap":
                name = "EXW_KAFKA_BOOTSTRAP"
            elif field.name in ("security_protocol", "sasl_mechanism", "sasl_username",
                                "sasl_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                name = "EXW_KAFKA_" + field.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(name, raw, field.default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.bootstrap.strip():
            raise ConfigError("EXW_KAFKA_BOOTSTRAP is empty")
        for name in ("topic_events", "topic_releases", "topic_alerts", "topic_dead_letters",
                     "app_id"):
            value = getattr(self, name)
            if not value or len(value) > 200 or any(c.isspace() for c in value):
                raise ConfigError(f"EXW_{name.upper()} is not a usable name: {value!r}")
        if len({self.topic_events, self.topic_releases, self.topic_alerts,
                self.topic_dead_letters}) != 4:
            raise ConfigError("the events, releases, alerts and dead-letter topics must differ")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"EXW_WEB_PORT out of range: {self.web_port}")
        if self.topic_partitions < 1 or self.topic_replication < 1:
            raise ConfigError("EXW_TOPIC_PARTITIONS and EXW_TOPIC_REPLICATION must be >= 1")
        if self.checkpoint_interval_s <= 0:
            raise ConfigError("EXW_CHECKPOINT_INTERVAL_S must be > 0")
        if not 1 <= self.fetch_max_wait_ms <= 60_000:
            raise ConfigError(f"EXW_FETCH_MAX_WAIT_MS must be in 1..60000, got {self.fetch_max_wait_ms}")
        if self.group_instance_id is not None:
            instance = self.group_instance() or ""
            if not instance or len(instance) > 249 or any(c.isspace() for c in instance):
                raise ConfigError(f"EXW_GROUP_INSTANCE_ID is not a usable name: {instance!r}")
        if not 6 <= self.session_timeout_s <= 90:
            # the brokers' default group.min.session.timeout.ms, and Faust's request timeout
            raise ConfigError(f"EXW_SESSION_TIMEOUT_S must be in 6..90, got {self.session_timeout_s:g}")
        if self.security_protocol not in _PROTOCOLS:
            raise ConfigError(f"EXW_KAFKA_SECURITY_PROTOCOL must be one of {_PROTOCOLS}, "
                              f"got {self.security_protocol!r}")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in _MECHANISMS:
                raise ConfigError(f"EXW_KAFKA_SASL_MECHANISM must be one of {_MECHANISMS} "
                                  f"with {self.security_protocol}")
            if not self.sasl_username or self.sasl_password is None:
                raise ConfigError("EXW_KAFKA_SASL_USERNAME and EXW_KAFKA_SASL_PASSWORD are "
                                  f"required with {self.security_protocol}")

    # ------------------------------------------------------------- derived
    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_ssl:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                  "security_protocol": self.security_protocol}
        if self.uses_ssl:
            kwargs.update(ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile,
                          ssl_keyfile=self.ssl_keyfile, ssl_check_hostname=True)
        if self.security_protocol.startswith("SASL"):
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password)
        return kwargs

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection settings for aiokafka clients."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap,
                                  "security_protocol": self.security_protocol}
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        if self.security_protocol.startswith("SASL"):
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password)
        return kwargs

    @property
    def heartbeat_interval_s(self) -> float:
        """A third of the session timeout (Kafka's advice), at most 3 s."""
        return min(3.0, self.session_timeout_s / 3)

    def group_instance(self) -> str | None:
        """The worker's static member name (``{hostname}`` replaced), or None (dynamic)."""
        if self.group_instance_id is None:
            return None
        return self.group_instance_id.replace("{hostname}", socket.gethostname())

    def internal_topic(self, suffix: str) -> str:
        """Name of a topic private to this app id (``<app_id>-<suffix>``)."""
        return f"{self.app_id}-{suffix}"

    def describe(self) -> dict[str, Any]:
        """Settings safe to log (the password is masked)."""
        out = dataclasses.asdict(self)
        if out.get("sasl_password") is not None:
            out["sasl_password"] = "***"
        return out


def _convert(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    return raw.strip()


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
