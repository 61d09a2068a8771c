"""The metrics and health endpoint of a real run: scraped over HTTP while streaming to Kafka."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from realservices import free_port
from tests.integration.cli_process import ROOT, CliProcess


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, profile) -> value for per-profile samples."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "profile" in s.labels:
                out[(s.name, s.labels["profile"])] = s.value
    return out


def test_metrics_health_and_readiness_of_a_running_fleet(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{ROOT / 'data' / 'transactions.csv'}'}}\n"
        f"metrics: {{port: {port}, host: 127.0.0.1}}\n"
        "instance_id: metrics-test\n"
        "stats_interval_s: 0.2\n"
        "profiles:\n"
        "  fast: {interval_s: 0.02, min_records: 2, max_records: 2}\n"
        "  slow: {interval_s: 0.5, min_records: 1, max_records: 1}\n"
    )
    summary = tmp_path / "summary.json"
    proc = CliProcess(["run", "--config", str(cfg), "--summary", str(summary)])
    cli_processes.append(proc)
    serving = proc.wait_for(lambda e: e.get("event") == "metrics_serving")
    base = serving["url"]
    proc.wait_for(
        lambda e: e.get("event") == "profile_stats" and e["profile"] == "slow" and e["delivered"]
    )

    assert get(f"{base}/healthz")[0] == 200
    status, body = get(f"{base}/readyz")
    assert status == 200, body
    status, text = get(f"{base}/metrics")
    assert status == 200
    values = samples(text)
    for profile in ("fast", "slow"):
        assert values[("streaming_producer_messages_delivered_total", profile)] > 0
        assert values[("streaming_producer_delivery_latency_seconds_count", profile)] > 0
    assert 'instance_id="metrics-test"' in text
    assert "streaming_producer_dataset_rows" in text

    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.log()
    final = json.loads(summary.read_text())
    # The last scrape cannot have counted more than was finally delivered.
    for profile in ("fast", "slow"):
        scraped = values[("streaming_producer_messages_delivered_total", profile)]
        assert scraped <= final["profiles"][profile]["delivered"]
    # The endpoint is gone with the process.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/healthz", timeout=2)
