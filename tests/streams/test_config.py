"""EXW_ settings: defaults, overrides, errors that name the variable, secrets masked."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, Settings


def test_defaults_match_the_documented_topics():
    s = Settings.from_env({})
    assert (s.bootstrap, s.topic_events, s.topic_releases, s.topic_alerts,
            s.topic_dead_letters) == ("127.0.0.1:9092", "api-calls", "model-releases", "alerts",
                                      "api-calls.dlq")
    assert s.kafka_python_kwargs() == {"bootstrap_servers": ["127.0.0.1:9092"],
                                       "security_protocol": "PLAINTEXT"}
    assert s.internal_topic("handoff") == "extraction-watch-handoff"


def test_every_variable_is_read():
    env = {"EXW_KAFKA_BOOTSTRAP": "a:1, b:2", "EXW_TOPIC_EVENTS": "e", "EXW_TOPIC_RELEASES": "r",
           "EXW_TOPIC_ALERTS": "al", "EXW_TOPIC_DEAD_LETTERS": "d", "EXW_APP_ID": "app",
           "EXW_DATA_DIR": "/tmp/x", "EXW_WEB_PORT": "7001", "EXW_TOPIC_PARTITIONS": "8",
           "EXW_TOPIC_REPLICATION": "3", "EXW_CHECKPOINT_INTERVAL_S": "12.5"}
    s = Settings.from_env(env)
    assert s.bootstrap_servers == ["a:1", "b:2"]
    assert (s.topic_events, s.topic_releases, s.topic_alerts, s.topic_dead_letters, s.app_id,
            s.data_dir, s.web_port, s.topic_partitions, s.topic_replication,
            s.checkpoint_interval_s) == ("e", "r", "al", "d", "app", "/tmp/x", 7001, 8, 3, 12.5)
    assert Settings.from_env(env, bootstrap="c:3").bootstrap == "c:3"


@pytest.mark.parametrize("env, fragment", [
    ({"EXW_WEB_PORT": "x"}, "EXW_WEB_PORT"),
    ({"EXW_TOPIC_PARTITIONS": "0"}, "EXW_TOPIC_PARTITIONS"),
    ({"EXW_TOPIC_ALERTS": "api-calls"}, "must differ"),
    ({"EXW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "EXW_KAFKA_SECURITY_PROTOCOL"),
    ({"EXW_GROUP_INSTANCE_ID": "worker 1"}, "EXW_GROUP_INSTANCE_ID"),
    ({"EXW_GROUP_INSTANCE_ID": "w" * 250}, "EXW_GROUP_INSTANCE_ID"),
    ({"EXW_SESSION_TIMEOUT_S": "5"}, "EXW_SESSION_TIMEOUT_S"),
    ({"EXW_SESSION_TIMEOUT_S": "91"}, "EXW_SESSION_TIMEOUT_S"),
    ({"EXW_SESSION_TIMEOUT_S": "soon"}, "EXW_SESSION_TIMEOUT_S"),
    ({"EXW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "EXW_KAFKA_SASL_MECHANISM"),
    ({"EXW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "EXW_KAFKA_SASL_MECHANISM": "PLAIN"},
     "EXW_KAFKA_SASL_USERNAME"),
])
def test_bad_values_are_clear_errors(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(env)


def test_sasl_settings_reach_both_clients_and_the_password_is_masked():
    s = Settings.from_env({"EXW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                           "EXW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                           "EXW_KAFKA_SASL_USERNAME": "exw", "EXW_KAFKA_SASL_PASSWORD": "s3cret"})
    kp, ak = s.kafka_python_kwargs(), s.aiokafka_kwargs()
    assert kp["sasl_mechanism"] == ak["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kp["sasl_plain_password"] == ak["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(s) and s.describe()["sasl_password"] == "***"


def test_fetch_wait_is_bounded() -> None:
    assert Settings.from_env({}).fetch_max_wait_ms == 100
    assert Settings.from_env({"EXW_FETCH_MAX_WAIT_MS": "500"}).fetch_max_wait_ms == 500
    for bad in ("0", "60001", "-5"):
        with pytest.raises(ConfigError, match="EXW_FETCH_MAX_WAIT_MS"):
            Settings.from_env({"EXW_FETCH_MAX_WAIT_MS": bad})


def test_static_membership_names_the_worker_and_the_session_sets_the_heartbeat(monkeypatch):
    dynamic = Settings.from_env({})
    assert dynamic.group_instance() is None
    assert (dynamic.session_timeout_s, dynamic.heartbeat_interval_s) == (10.0, 3.0)
    monkeypatch.setattr("socket.gethostname", lambda: "c0ffee123456")
    s = Settings.from_env({"EXW_GROUP_INSTANCE_ID": "exw-{hostname}",
                           "EXW_SESSION_TIMEOUT_S": "6"})
    assert s.group_instance() == "exw-c0ffee123456"
    assert (s.session_timeout_s, s.heartbeat_interval_s) == (6.0, 2.0)
    assert Settings.from_env({"EXW_GROUP_INSTANCE_ID": "worker-1"}).group_instance() == "worker-1"
    assert Settings.from_env({"EXW_SESSION_TIMEOUT_S": "60"}).heartbeat_interval_s == 3.0
