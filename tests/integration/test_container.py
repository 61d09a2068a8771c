"""The container image, built from the Dockerfile and run against the session's Tansu and moto.

The engine is `CONTAINER_ENGINE`, else docker or podman (`realservices.container`; on these
machines `../shared/container/prepare.sh` makes podman work first). Without an engine that can
build, the tests skip with the reason. The image is built once per session; each run is short.

Proven here: the image runs as a non-root uid; its embedded default config runs; a mounted user
config reading S3 and Kafka settings from environment variables streams; the health check is
healthy although that config says nothing about metrics; SIGHUP with the mounted config edited adds
a profile; `stop` (SIGTERM to PID 1) exits 0 within the shutdown budget, with the summary written
to a mounted volume and every delivered message in the topic.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from realservices import AWS_REGION, S3Server, consume_all, create_topic, free_port
from realservices.container import Engine, Image, Unavailable, build_image, find_engine
from tests.conftest import _delete_topic
from tests.integration.cli_process import ROOT, CliProcess

UID = "10001"
SHUTDOWN_S = 10


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    try:
        engine = find_engine()
    except Unavailable as exc:
        pytest.skip(str(exc))
    tag = f"streaming-producer:test-{uuid.uuid4().hex[:8]}"
    try:
        built = build_image(engine, tag)
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout or "") + (exc.stderr or "")
        pytest.fail(f"image build failed:\n{output[-4000:]}")
    print(f"\nimage {tag}: built in {built.build_s:.1f} s, {built.size_bytes / 1e6:.1f} MB")
    yield built
    engine.run("rmi", "-f", tag, check=False)  # the layers stay cached for the next build


@pytest.fixture
def container_name(image: Image) -> Iterator[str]:
    name = f"sp-test-{uuid.uuid4().hex[:8]}"
    yield name
    image.engine.run("rm", "-f", name, check=False)


def test_the_embedded_default_runs_as_a_non_root_user(image: Image) -> None:
    engine = image.engine
    assert engine.run("run", "--rm", "--entrypoint", "id", image.tag, "-u").stdout.strip() == UID
    # No network at all: the embedded config needs none (an in-process cluster on loopback).
    result = engine.run(
        "run", "--rm", "--network", "none", image.tag, "run", "--max-messages", "40"
    )
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    stopped = next(e for e in events if e["event"] == "fleet_stopped")
    assert (stopped["produced"], stopped["delivered"]) == (40, 40)


def test_a_mounted_config_streams_from_s3_to_kafka_stays_healthy_reloads_and_stops_cleanly(
    image: Image, container_name: str, s3: S3Server, kafka_bootstrap: str, tmp_path: Path
) -> None:
    engine = image.engine
    bucket = f"data-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(
        Bucket=bucket,
        Key="transactions.csv",
        Body=(ROOT / "data" / "transactions.csv").read_bytes(),
    )
    topic = f"container-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=3)
    config_dir, out_dir = tmp_path / "config", tmp_path / "out"
    config_dir.mkdir()
    out_dir.mkdir()
    out_dir.chmod(0o777)  # the image's user writes the summary here
    config = config_dir / "config.yaml"
    # Nothing about metrics: the health check must not depend on it.
    base = f"""
kafka: {{topic: {topic}}}
dataset: {{uri: "s3://{bucket}/transactions.csv"}}
shutdown_timeout_s: {SHUTDOWN_S}
stats_interval_s: 1
profiles:
  first: {{interval_s: 0.05, min_records: 2, max_records: 4}}
"""
    config.write_text(base)
    config_dir.chmod(0o755)
    config.chmod(0o644)
    health_port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ENDPOINT_URL": s3.endpoint_url,
        "KEY": "testing",
        "SECRET": "testing",
        "AWS_REGION": AWS_REGION,
        "HEALTH_PORT": str(health_port),  # the host's network is shared: a free port
    }
    command = [engine.command, "run", "--name", container_name, "--network", "host"]
    for name, value in env.items():
        command += ["-e", f"{name}={value}"]
    command += ["-v", f"{config_dir}:/config:ro", "-v", f"{out_dir}:/out", image.tag]
    proc = CliProcess(
        ["run", "--config", "/config/config.yaml", "--summary", "/out/summary.json"],
        command=command,
    )
    try:
        proc.wait_for(lambda e: e.get("event") == "profile_stats", timeout_s=90)

        # PID 1 is the program, as the image's non-root user.
        status = engine.run("exec", container_name, "cat", "/proc/1/status").stdout
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids) == {UID}
        assert wait_healthy(engine, container_name), proc.log()

        # SIGHUP with the mounted config edited (in place: the bind mount follows the inode).
        config.write_text(base + "  second: {interval_s: 0.05, min_records: 1, max_records: 2}\n")
        engine.run("kill", "--signal", "HUP", container_name)
        reloaded = proc.wait_for(lambda e: e.get("event") == "config_reloaded", timeout_s=30)
        assert reloaded["added"] == ["second"], reloaded
        proc.wait_for(
            lambda e: e.get("event") == "profile_stats" and e.get("profile") == "second",
            timeout_s=30,
        )

        started = time.monotonic()
        engine.run("stop", "-t", str(SHUTDOWN_S + 20), container_name, timeout_s=60)
        stop_s = time.monotonic() - started
        assert proc.wait(timeout_s=30) == 0, proc.log()
    finally:
        proc.stop()
    code = engine.run("inspect", container_name, "--format", "{{.State.ExitCode}}").stdout
    assert code.strip() == "0"
    assert stop_s < SHUTDOWN_S, stop_s  # within the budget, and far from the engine's SIGKILL

    summary = json.loads((out_dir / "summary.json").read_text())
    assert set(summary["profiles"]) == {"first", "second"}
    total = summary["total"]
    assert total["delivered"] == total["produced"] > 0
    assert (total["failed"], total["undelivered"], total["in_flight"]) == (0, 0, 0)
    assert len(consume_all(kafka_bootstrap, topic)) == total["delivered"]
    _delete_topic(kafka_bootstrap, topic)


def wait_healthy(engine: Engine, name: str, timeout_s: float = 90) -> bool:
    """Whether the image's HEALTHCHECK passes within `timeout_s`: run on demand with podman;
    docker runs it on its own schedule (every 15 s), so its status is polled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine.is_podman:
            if engine.run("healthcheck", "run", name, check=False).returncode == 0:
                return True
        else:
            status = engine.run("inspect", name, "--format", "{{.State.Health.Status}}").stdout
            if status.strip() == "healthy":
                return True
        time.sleep(1)  # an external process's state: nothing to wait on but the clock
    return False
