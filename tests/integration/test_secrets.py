"""Secrets never leak: not in logs (even --debug, even librdkafka's own), errors, reprs, the summary
or the metrics endpoint.

A real run reads its dataset from S3 with a secret key and connects to Kafka with SASL and SSL
passwords set (over PLAINTEXT, where librdkafka accepts and ignores them, so the run streams), with
`--debug` and librdkafka's `debug: conf` making both loggers as talkative as they get; reloads
of a changed and of a broken config file exercise the error paths. Then every byte the run
produced is searched for every secret value.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import SecretStr

from realservices import AWS_REGION, S3Server, TansuBroker, free_port
from supervisor.config import REDACTED, Config
from supervisor.dataset import S3Location
from supervisor.errors import ExitCode
from tests.integration.cli_process import ROOT, CliProcess

BUCKET = "secret-datasets"
S3_ACCESS_KEY = "AKIAS3ACCESSKEYFORTEST"
S3_SECRET = "s3-secret-k9Xq2"
SASL_PASSWORD = "hunter2-secret"
SECRET_PROPERTIES = {
    "sasl.password": SASL_PASSWORD,
    "ssl.key.password": "ssl-key-password-7Hb",
    "ssl.keystore.password": "keystore-password-3Jd",
    "sasl.oauthbearer.client.secret": "oauth-client-secret-8Wm",
    "sasl.oauthbearer.config": "principal=alice extension_token=oauth-config-secret-4Rn",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----pem-secret-6Vc-----END PRIVATE KEY-----",
}
SECRETS = [
    S3_SECRET,
    *SECRET_PROPERTIES.values(),
    "oauth-config-secret-4Rn",
    "pem-secret-6Vc",
    "reloaded-password-5Tz",
    "broken-password-2Kp",
]


def kafka_config(password: str = SASL_PASSWORD) -> str:
    properties = {
        "security.protocol": "PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        **SECRET_PROPERTIES,
        "sasl.password": password,
        "debug": "conf,security,broker",
    }
    return json.dumps(properties)


def config_text(bootstrap: str, topic: str, endpoint: str, metrics_port: int, kafka: str) -> str:
    return (
        f"kafka: {{bootstrap_servers: '{bootstrap}', topic: {topic}, config: {kafka}}}\n"
        "dataset:\n"
        f"  uri: s3://{BUCKET}/tx.csv\n"
        f"  s3: {{endpoint_url: '{endpoint}', access_key: {S3_ACCESS_KEY}, region: {AWS_REGION}}}\n"
        f"metrics: {{port: {metrics_port}, host: 127.0.0.1}}\n"
        "stats_interval_s: 0.2\n"
        "profiles:\n"
        "  p: {interval_s: 0.05, min_records: 1, max_records: 3}\n"
    )


def replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


@pytest.fixture
def uploaded(s3: S3Server) -> None:
    with closing(s3.client()) as client:
        client.create_bucket(Bucket=BUCKET)
        client.put_object(
            Bucket=BUCKET, Key="tx.csv", Body=(ROOT / "data" / "transactions.csv").read_bytes()
        )


def test_no_secret_appears_anywhere_in_a_debug_run_with_reloads(
    tmp_path: Path,
    s3: S3Server,
    uploaded: None,
    kafka_bootstrap: str,
    topic: str,
    cli_processes: list[CliProcess],
) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    good = config_text(kafka_bootstrap, topic, s3.endpoint_url, port, kafka_config())
    config.write_text(good)
    summary = tmp_path / "summary.json"
    # The S3 secret comes from the seed's SECRET variable, the rest from the file.
    proc = CliProcess(
        ["run", "--config", str(config), "--summary", str(summary), "--debug"],
        env={"SECRET": S3_SECRET},
    )
    cli_processes.append(proc)
    proc.wait_for(lambda e: e.get("event") == "profile_stats" and e["delivered"] > 0)
    scraped = [scrape(f"http://127.0.0.1:{port}{path}") for path in ("/metrics", "/readyz")]

    # A changed password (refused live: connection settings need a restart) ...
    replace(config, good.replace(SASL_PASSWORD, "reloaded-password-5Tz"))
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda e: e.get("event") == "config_reload_refused")
    # ... and a password of the wrong type, and a bad dataset setting, each refused.
    broken = good.replace(f'"{SASL_PASSWORD}"', '["broken-password-2Kp"]')
    replace(config, broken)
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda e: e.get("event") == "config_reload_refused" and "sasl" in e["error"])
    proc.signal(signal.SIGTERM)
    code = proc.wait()

    assert code == ExitCode.OK, proc.log()
    everything = "\n".join(
        [*proc.lines, proc.stdout.decode(errors="replace"), summary.read_text(), *scraped]
    )
    leaked = [secret for secret in SECRETS if secret in everything]
    assert leaked == []
    # Not vacuous: the run was as talkative as promised, and showed the masks.
    (starting,) = proc.named("fleet_starting")
    shown = starting["producer_config"]
    assert shown["sasl.username"] == "alice"
    for name in SECRET_PROPERTIES:
        assert shown[name] == REDACTED, name
    assert any(e.get("logger") == "librdkafka" and "CONF" in e["event"] for e in proc.events)
    assert any(e.get("level") == "debug" for e in proc.events)
    assert "streaming_producer_messages_delivered_total" in scraped[0]
    assert json.loads(summary.read_text())["total"]["delivered"] > 0
    refusals = proc.named("config_reload_refused")
    assert len(refusals) == 2
    assert "kafka.config" in refusals[0]["error"]


def test_a_rejected_login_never_echoes_the_password(
    tmp_path: Path, durable_broker: TansuBroker, cli_processes: list[CliProcess]
) -> None:
    """SASL against a broker that refuses it: every error path of the login, none with it."""
    properties = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": SASL_PASSWORD,
    }
    config = tmp_path / "config.yaml"
    kafka = {"bootstrap_servers": durable_broker.bootstrap, "config": properties}
    config.write_text(
        f"kafka: {json.dumps(kafka)}\n"
        f"dataset: {{uri: '{ROOT / 'data' / 'transactions.csv'}'}}\n"
        "profiles:\n  p: {interval_s: 0.1, min_records: 1, max_records: 1}\n"
    )
    proc = CliProcess(["run", "--config", str(config), "--debug", "--startup-timeout", "2"])
    cli_processes.append(proc)

    code = proc.wait()

    assert code == ExitCode.KAFKA_UNREACHABLE, proc.log()
    assert any("SASL" in str(e.get("reason", "")) for e in proc.events), proc.log()
    everything = "\n".join([*proc.lines, proc.stdout.decode(errors="replace")])
    assert SASL_PASSWORD not in everything


def test_reprs_dumps_and_errors_of_the_settings_hide_every_secret(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        config_text("127.0.0.1:9092", "t", "http://127.0.0.1:9000", 9100, kafka_config()).replace(
            f"access_key: {S3_ACCESS_KEY}", "access_key: '${KEY}', secret_key: '${SECRET}'"
        )
    )

    config = Config.from_yaml(config_path, env={"KEY": S3_ACCESS_KEY, "SECRET": S3_SECRET})
    s3 = config.dataset.s3
    location = S3Location(s3.endpoint_url, s3.access_key, s3.secret_key, s3.region)

    shown = "\n".join(
        [
            repr(config),
            str(config),
            repr(config.kafka),
            repr(config.dataset),
            repr(location),
            json.dumps(config.model_dump(mode="json")),
            config.model_dump_json(),
            json.dumps(config.kafka.redacted_config()),
        ]
    )
    assert [secret for secret in SECRETS if secret in shown] == []
    # The values are there for the clients that need them.
    assert config.kafka.producer_config()["sasl.password"] == SASL_PASSWORD
    assert isinstance(s3.secret_key, SecretStr)
    assert s3.secret_key.get_secret_value() == S3_SECRET


def test_debug_tracebacks_show_no_local_variables(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    """A --debug traceback's frames hold the raw config and the environment: their locals are
    not printed, so a secret that sorts early is not shown truncated either."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "dataset: {uri: 's3://bucket/tx.csv',"
        " s3: {access_key: '${KEY}', secret_key: '${SECRET}'}}\n"
        "profiles: {p: {interval_s: 1, min_records: 1, max_records: 1}}\n"
    )
    dead = f"http://127.0.0.1:{free_port()}"
    proc = CliProcess(
        ["run", "--debug", "--dry-run", "--config", str(config)],
        env={"KEY": "AKIA-early-0000", "SECRET": S3_SECRET, "ENDPOINT_URL": dead},
    )
    cli_processes.append(proc)
    assert proc.wait() == 2, proc.log()
    everything = "\n".join(proc.lines)
    assert S3_SECRET not in everything
    assert "AKIA-early-0000" not in everything
    (fatal,) = proc.named("fatal")
    frames = [frame for entry in fatal["exception"] for frame in entry["frames"]]
    assert frames  # a traceback, as --debug asks
    assert not any("locals" in frame for frame in frames)


def test_a_password_in_the_s3_endpoint_url_is_masked_in_every_line(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    password = "endpoint-pw-7Hd"
    endpoint = f"http://minio:{password}@127.0.0.1:{free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        "dataset: {uri: 's3://bucket/tx.csv'}\n"
        "profiles: {p: {interval_s: 1, min_records: 1, max_records: 1}}\n"
    )
    env = {"ENDPOINT_URL": endpoint, "KEY": "minio", "SECRET": S3_SECRET}
    run = CliProcess(["run", "--dry-run", "--config", str(config)], env=env)
    check = CliProcess(["check", "--config", str(config)], env=env)
    cli_processes.extend((run, check))
    assert run.wait() == 2, run.log()
    assert check.wait() == 2, check.log()
    output = "\n".join([*run.lines, *check.lines, check.output()])
    assert password not in output
    assert "http://minio:**********@127.0.0.1:" in output
