"""Bad input through the real CLI: one clear line naming the culprit, exit 2, nothing sent.

Every case runs `streaming-producer run` as a subprocess against the real broker (and the real S3
server for datasets) and checks the whole of what a user sees: exit code 2, exactly one error line
on stderr whose message is a single line naming what is wrong, no traceback anywhere (none is
shown without --debug), nothing on stdout, and an empty topic afterwards.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from realservices import AWS_REGION, S3Server, consume_all, free_port
from supervisor.config import Config
from supervisor.dataset import FIELDS
from supervisor.errors import ExitCode
from tests.integration.cli_process import ROOT, CliProcess

BUCKET = "datasets"
REPO_DATASET = ROOT / "data" / "transactions.csv"
HEADER = ",".join(FIELDS)
GOOD_ROW = (
    "6b65a6a4-8b81-48f6-b38a-088ca65ed389,Card,12.50,2026-01-11T10:00:00,TESCO,debit,outgoing"
)
EXIT_TIMEOUT_S = 60
# Credentials that must never be echoed, whatever the failure.
ACCESS_KEY = "AKIA-bad-input-access"
SECRET_KEY = "bad-input-secret-value"


@dataclass
class Outcome:
    """What a finished run showed: exit code, stderr's JSON events and raw lines, stdout."""

    code: int
    proc: CliProcess

    @property
    def everything(self) -> str:
        return "\n".join(self.proc.lines) + self.proc.stdout.decode(errors="replace")

    def the_error(self) -> str:
        """The message of the single error line; fails unless there is exactly one."""
        problems = [e for e in self.proc.events if e.get("level") in ("error", "critical")]
        assert len(problems) == 1, self.proc.log()
        (fatal,) = problems
        assert fatal["event"] == "fatal", fatal
        message = fatal["error"]
        assert isinstance(message, str)
        assert len(message.splitlines()) == 1, message
        return message


@pytest.fixture
def run_cli(tmp_path: Path, cli_processes: list[CliProcess]) -> Callable[..., Outcome]:
    """Run `streaming-producer run --config PATH ARGS` in the test's directory to its end."""

    def run(config: Path, *args: str, env: dict[str, str] | None = None) -> Outcome:
        proc = CliProcess(["run", "--config", str(config), *args], env=env, cwd=tmp_path)
        cli_processes.append(proc)
        return Outcome(proc.wait(EXIT_TIMEOUT_S), proc)

    return run


def assert_refused(outcome: Outcome, *fragments: str) -> str:
    """Exit 2, one clean error line holding every fragment, no traceback, nothing on stdout."""
    assert outcome.code == ExitCode.BAD_INPUT, outcome.proc.log()
    message = outcome.the_error()
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in outcome.everything
    assert all("exception" not in event for event in outcome.proc.events)
    # Every stderr line is a log event: no stray text (a print, a librdkafka line) in between.
    for line in outcome.proc.lines:
        assert isinstance(json.loads(line), dict), line
    assert outcome.proc.stdout == b""
    assert SECRET_KEY not in outcome.everything
    return message


def write_config(directory: Path, text: str) -> Path:
    path = directory / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def kafka_section(bootstrap: str, topic: str, properties: str = "{}") -> str:
    return f"kafka: {{bootstrap_servers: '{bootstrap}', topic: {topic}, config: {properties}}}\n"


# --- configuration -------------------------------------------------------------------------------

PROFILE = "profiles:\n  p: {interval_s: 0.01, min_records: 1, max_records: 2}\n"
# Each case is a whole config whose only fault is the one named: without it, the run would stream
# the repository's dataset to the test's topic. @SERVERS@, @TOPIC@ and @DATASET@ are filled in.
KAFKA = "kafka: {bootstrap_servers: '@SERVERS@', topic: @TOPIC@}\n"
DATASET = "dataset: {uri: '@DATASET@'}\n"
VALID = KAFKA + DATASET


def bad_profile(settings: str, fragments: list[str], case_id: str) -> Any:
    """A case whose fault is in the settings of its one profile `p`."""
    return pytest.param(VALID + f"profiles:\n  p: {settings}\n", fragments, id=case_id)


CONFIG_CASES = [
    bad_profile(
        "{interval_s: 1, min_records: 1",
        [":5:1: invalid YAML: expected ',' or '}'"],
        "yaml-syntax-error-with-line",
    ),
    bad_profile(
        "{interval_s: 1, min_records: 1, max_records: 2, burst: 9}",
        ["profiles.p.burst: unknown key", "expected one of: interval_s"],
        "unknown-key-named-with-its-path",
    ),
    pytest.param(
        KAFKA.replace("}", ", compression: lz4}") + DATASET + PROFILE,
        ["kafka.compression: unknown key"],
        id="unknown-section-key",
    ),
    bad_profile(
        "{interval_s: 1, min_records: many, max_records: 2}",
        ["profiles.p.min_records: must be a whole number (got 'many')"],
        "wrong-type",
    ),
    bad_profile(
        "{interval_s: soon, min_records: 1, max_records: 2}",
        ["profiles.p.interval_s: must be a number"],
        "wrong-type-interval",
    ),
    bad_profile(
        "{interval_s: 0, min_records: 1, max_records: 2}",
        ["profiles.p.interval_s: must be at least 0.0001 (got 0)"],
        "interval-zero",
    ),
    bad_profile(
        "{interval_s: -0.5, min_records: 1, max_records: 2}",
        ["profiles.p.interval_s: must be at least 0.0001 (got -0.5)"],
        "interval-negative",
    ),
    bad_profile(
        "{interval_s: 1, min_records: 5, max_records: 2}",
        ["profiles.p: min_records (5) is greater than max_records (2)"],
        "min-above-max",
    ),
    bad_profile(
        "{interval_s: 1, min_records: 0, max_records: 2}",
        ["profiles.p.min_records: must be at least 1 (got 0)"],
        "min-below-one",
    ),
    pytest.param(
        VALID + "profiles: {}\n",
        ["profiles: no profiles defined", "add at least one under 'profiles:'"],
        id="no-profiles",
    ),
    pytest.param(VALID, ["profiles", "no profiles defined"], id="profiles-missing"),
    bad_profile(
        "{preset: turbo}",
        [
            "profiles.p.preset: unknown preset 'turbo'",
            "available: burst, card-testing, diurnal, high, low, normal",
        ],
        "unknown-preset",
    ),
    pytest.param(
        KAFKA.replace("@TOPIC@", "'${NO_SUCH_VARIABLE_FOR_TESTS}'") + DATASET + PROFILE,
        [
            "kafka.topic: environment variable NO_SUCH_VARIABLE_FOR_TESTS is not set",
            "${NO_SUCH_VARIABLE_FOR_TESTS:-value}",
        ],
        id="unset-variable-without-default",
    ),
]


def fill(text: str, *, servers: str, topic: str) -> str:
    return (
        text.replace("@SERVERS@", servers)
        .replace("@TOPIC@", topic)
        .replace("@DATASET@", str(REPO_DATASET))
    )


def test_the_config_cases_are_valid_but_for_their_fault(tmp_path: Path) -> None:
    """Guards the cases above: the valid parts alone make a config that loads."""
    config = write_config(tmp_path, fill(VALID + PROFILE, servers="127.0.0.1:9092", topic="t"))
    assert Config.from_yaml(config).profiles


@pytest.mark.parametrize(("text", "fragments"), CONFIG_CASES)
def test_a_bad_config_is_refused_in_one_line_and_nothing_is_sent(
    tmp_path: Path,
    run_cli: Callable[..., Outcome],
    kafka_bootstrap: str,
    topic: str,
    text: str,
    fragments: list[str],
) -> None:
    config = write_config(tmp_path, fill(text, servers=kafka_bootstrap, topic=topic))

    outcome = run_cli(config)

    message = assert_refused(outcome, *fragments)
    assert message.startswith(str(config))
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_missing_config_file_is_named_with_the_fix(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    missing = tmp_path / "nowhere" / "config.yaml"

    outcome = run_cli(missing)

    assert_refused(outcome, f"config file '{missing}' not found", "pass --config PATH")


def config_with_a_one_row_dataset(
    directory: Path, bootstrap: str, topic: str, properties: str
) -> Path:
    """A valid config but for `properties`, streaming a local one-row dataset."""
    config = write_config(
        directory,
        kafka_section(bootstrap, topic, properties) + "dataset: {uri: data.csv}\n" + PROFILE,
    )
    (directory / "data.csv").write_text(f"{HEADER}\n{GOOD_ROW}\n")
    return config


@pytest.mark.parametrize(
    ("properties", "fragments"),
    [
        pytest.param(
            '{"no.such.property": 1}',
            ["kafka.config", 'No such configuration property: "no.such.property"'],
            id="unknown-property",
        ),
        pytest.param(
            '{"queue.buffering.max.messages": "lots"}',
            [
                "kafka.config",
                'Invalid value for configuration property "queue.buffering.max.messages"',
            ],
            id="invalid-value",
        ),
    ],
)
def test_a_property_librdkafka_rejects_is_refused_with_its_message(
    tmp_path: Path,
    run_cli: Callable[..., Outcome],
    kafka_bootstrap: str,
    topic: str,
    properties: str,
    fragments: list[str],
) -> None:
    config = config_with_a_one_row_dataset(tmp_path, kafka_bootstrap, topic, properties)

    outcome = run_cli(config)

    assert_refused(outcome, *fragments)
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_rejected_property_is_named_as_the_config_writes_it(
    tmp_path: Path, run_cli: Callable[..., Outcome], kafka_bootstrap: str, topic: str
) -> None:
    config = config_with_a_one_row_dataset(tmp_path, kafka_bootstrap, topic, "{linger.ms: soon}")

    outcome = run_cli(config)

    assert_refused(outcome, "kafka.config", "linger.ms")


def test_debug_shows_the_traceback_the_default_hides(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    config = write_config(tmp_path, "profiles:\n  p: {interval_s: 0, min_records: 1}\n")

    quiet = run_cli(config)
    loud = run_cli(config, "--debug")

    assert_refused(quiet, "profiles.p.interval_s")
    assert loud.code == ExitCode.BAD_INPUT
    (fatal,) = loud.proc.named("fatal")
    assert fatal["exception"], "--debug should attach the traceback to the fatal line"


# --- the dataset ---------------------------------------------------------------------------------


def s3_config(
    directory: Path,
    *,
    bootstrap: str,
    topic: str,
    endpoint: str,
    uri: str,
    on_invalid: str = "skip",
) -> Path:
    return write_config(
        directory,
        kafka_section(bootstrap, topic)
        + textwrap.dedent(
            f"""\
            dataset:
              uri: {uri}
              on_invalid: {on_invalid}
              s3:
                endpoint_url: {endpoint}
                access_key: {ACCESS_KEY}
                secret_key: {SECRET_KEY}
                region: {AWS_REGION}
            """
        )
        + PROFILE,
    )


@pytest.fixture
def s3_dataset_config(
    tmp_path: Path, s3: S3Server, kafka_bootstrap: str, topic: str
) -> Callable[..., Path]:
    """`s3_config` for the test's directory, topic and S3 server: only the dataset varies."""

    def write(uri: str, *, on_invalid: str = "skip") -> Path:
        return s3_config(
            tmp_path,
            bootstrap=kafka_bootstrap,
            topic=topic,
            endpoint=s3.endpoint_url,
            uri=uri,
            on_invalid=on_invalid,
        )

    return write


@pytest.fixture
def bucket(s3: S3Server) -> str:
    with closing(s3.client()) as client:
        client.create_bucket(Bucket=BUCKET)
    return BUCKET


def upload(s3: S3Server, key: str, body: bytes) -> str:
    with closing(s3.client()) as client:
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


LONG_LINE = f"{GOOD_ROW}\n".encode() + b'"' + b"x" * 300_000 + b'"\n'

CONTENT_CASES = [
    pytest.param(b"", ["the file is empty", "expected a CSV with a header"], id="empty-object"),
    pytest.param(
        f"{HEADER}\n".encode(),
        ["the file has a header but no data rows", "add transactions"],
        id="header-only",
    ),
    pytest.param(
        HEADER.replace("amount,", "").encode() + b"\n" + GOOD_ROW.encode() + b"\n",
        ["missing column(s) amount", f"the first line must name {HEADER}"],
        id="required-column-missing",
    ),
    pytest.param(
        f"{HEADER}\nnot-a-uuid,x,1,2026-01-11T10:00:00,m,debit,outgoing\n"
        f"{GOOD_ROW.replace('debit', 'refund')}\n".encode(),
        ["no valid rows; first errors: line 2: id:", "line 3: operation_type:"],
        id="every-row-invalid",
    ),
    pytest.param(
        f"{HEADER}\n{GOOD_ROW}\n".encode() + GOOD_ROW.encode().replace(b"TESCO", b"T\xe9SCO"),
        ["line 3: byte b'\\xe9' at offset", "is not UTF-8", "save the file as UTF-8"],
        id="not-utf8",
    ),
    pytest.param(
        f"{HEADER}\n".encode() + LONG_LINE,
        ["line 3: a field is longer than 131072 characters", "fix the file"],
        id="absurdly-long-line",
    ),
]


@pytest.mark.parametrize(("body", "fragments"), CONTENT_CASES)
def test_an_s3_object_that_is_no_dataset_is_refused_and_nothing_is_sent(
    run_cli: Callable[..., Outcome],
    s3_dataset_config: Callable[..., Path],
    s3: S3Server,
    bucket: str,
    kafka_bootstrap: str,
    topic: str,
    body: bytes,
    fragments: list[str],
) -> None:
    uri = upload(s3, "in/tx.csv", body)
    config = s3_dataset_config(uri)

    outcome = run_cli(config)

    message = assert_refused(outcome, *fragments)
    assert message.startswith(f"dataset {uri}: ")
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_bad_row_with_on_invalid_fail_is_refused_naming_its_line(
    run_cli: Callable[..., Outcome],
    s3_dataset_config: Callable[..., Path],
    s3: S3Server,
    bucket: str,
    kafka_bootstrap: str,
    topic: str,
) -> None:
    uri = upload(s3, "tx.csv", f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW},extra\n".encode())
    config = s3_dataset_config(uri, on_invalid="fail")

    outcome = run_cli(config)

    assert_refused(outcome, "line 3: 8 columns where the header has 7", "on_invalid: skip")
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_missing_bucket_is_named(
    run_cli: Callable[..., Outcome],
    s3_dataset_config: Callable[..., Path],
    s3: S3Server,
    kafka_bootstrap: str,
    topic: str,
) -> None:
    config = s3_dataset_config("s3://no-such-bucket/tx.csv")

    outcome = run_cli(config)

    assert_refused(
        outcome,
        f"bucket 'no-such-bucket' does not exist at {s3.endpoint_url}",
        "create it or fix dataset.uri",
    )
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_missing_key_is_named(
    run_cli: Callable[..., Outcome],
    s3_dataset_config: Callable[..., Path],
    s3: S3Server,
    bucket: str,
    kafka_bootstrap: str,
    topic: str,
) -> None:
    upload(s3, "other.csv", f"{HEADER}\n{GOOD_ROW}\n".encode())
    config = s3_dataset_config(f"s3://{BUCKET}/in/missing.csv")

    outcome = run_cli(config)

    assert_refused(
        outcome,
        f"no object 'in/missing.csv' in bucket '{BUCKET}' at {s3.endpoint_url}",
        "upload it or fix dataset.uri",
    )
    assert consume_all(kafka_bootstrap, topic) == []


def test_an_unreachable_s3_endpoint_is_named_after_bounded_retries(
    tmp_path: Path, run_cli: Callable[..., Outcome], kafka_bootstrap: str, topic: str
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    config = s3_config(
        tmp_path, bootstrap=kafka_bootstrap, topic=topic, endpoint=nobody, uri="s3://b/tx.csv"
    )

    outcome = run_cli(config)  # returns: the retries are bounded

    assert_refused(outcome, f"cannot reach S3 at {nobody}", "start it or fix the endpoint")
    assert consume_all(kafka_bootstrap, topic) == []


def test_a_missing_local_file_is_named(
    tmp_path: Path, run_cli: Callable[..., Outcome], kafka_bootstrap: str, topic: str
) -> None:
    config = write_config(
        tmp_path,
        kafka_section(kafka_bootstrap, topic) + "dataset: {uri: missing.csv}\n" + PROFILE,
    )

    outcome = run_cli(config)

    assert_refused(outcome, f"dataset {tmp_path / 'missing.csv'}: file not found", "dataset.uri")
    assert consume_all(kafka_bootstrap, topic) == []


# --- S3 access denied: moto enforces IAM once told to (`/moto-api/reset-auth`) ------------------


@dataclass(frozen=True)
class IamKeys:
    access_key: str
    secret_key: str


@pytest.fixture
def s3_enforcing_iam(s3: S3Server, bucket: str) -> Iterator[tuple[S3Server, IamKeys]]:
    """The S3 server with an object, a user allowed only to list the bucket, and IAM enforced.

    Enforcement is server-wide: it is switched off again however the test ends."""
    import boto3

    upload(s3, "tx.csv", f"{HEADER}\n{GOOD_ROW}\n".encode())
    iam: Any = boto3.client(
        "iam",
        endpoint_url=s3.endpoint_url,
        region_name=AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with closing(iam):
        iam.create_user(UserName="lister")
        iam.put_user_policy(
            UserName="lister",
            PolicyName="list-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "s3:ListBucket",
                            "Resource": f"arn:aws:s3:::{BUCKET}",
                        }
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName="lister")["AccessKey"]
    _set_moto_auth(s3, "0")
    try:
        yield s3, IamKeys(key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _set_moto_auth(s3, "inf")


def _set_moto_auth(s3: S3Server, free_requests: str) -> None:
    """Authenticate every request after `free_requests` ("inf": never)."""
    import urllib.request

    request = urllib.request.Request(
        f"{s3.endpoint_url}/moto-api/reset-auth",
        data=free_requests.encode(),
        headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("who", "code"),
    [
        pytest.param("user-without-get-object", "AccessDenied", id="no-permission"),
        pytest.param("unknown-access-key", "InvalidAccessKeyId", id="unknown-key"),
        pytest.param("wrong-secret", "SignatureDoesNotMatch", id="wrong-secret"),
    ],
)
def test_access_denied_by_s3_is_named_without_the_credentials(
    run_cli: Callable[..., Outcome],
    s3_dataset_config: Callable[..., Path],
    s3_enforcing_iam: tuple[S3Server, IamKeys],
    kafka_bootstrap: str,
    topic: str,
    who: str,
    code: str,
) -> None:
    s3, keys = s3_enforcing_iam
    access_key, secret_key = {
        "user-without-get-object": (keys.access_key, keys.secret_key),
        "unknown-access-key": ("AKIAUNKNOWNKEY000000", keys.secret_key),
        "wrong-secret": (keys.access_key, SECRET_KEY),
    }[who]
    uri = f"s3://{BUCKET}/tx.csv"
    config = s3_dataset_config(uri)
    config.write_text(
        config.read_text().replace(ACCESS_KEY, "${S3_KEY}").replace(SECRET_KEY, "${S3_SECRET}")
    )

    outcome = run_cli(config, env={"S3_KEY": access_key, "S3_SECRET": secret_key})

    assert_refused(
        outcome,
        f"dataset {uri}: access denied by {s3.endpoint_url} ({code})",
        "check the S3 access key, secret and bucket policy",
    )
    assert secret_key not in outcome.everything
    assert keys.secret_key not in outcome.everything
    assert consume_all(kafka_bootstrap, topic) == []
