"""`check` with a Schema Registry: each schema looked up, never registered; secrets masked."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from supervisor.checks import run_checks
from supervisor.config import Config
from supervisor.dataset.synth import write_csv
from supervisor.errors import ExitCode


def check(tmp_path: Path, registry: dict[str, Any]) -> tuple[int, list[str]]:
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=20, seed=1)
    config = Config.model_validate(
        {
            "dataset": {"uri": str(csv)},
            "schema_registry": registry,
            "profiles": {
                "p": {"interval_s": 1, "min_records": 1, "max_records": 1, "format": "avro"}
            },
        }
    )
    out = io.StringIO()
    code = run_checks(config, out=out, timeout_s=2)
    return code, out.getvalue().splitlines()


def test_a_schema_not_registered_yet_passes_when_the_run_registers_it(tmp_path: Path) -> None:
    code, lines = check(tmp_path, {"url": "mock://check"})
    assert code == ExitCode.OK
    assert lines[-2] == (
        "✓ registry mock://check: reachable; a schema is not registered yet"
        " (auto_register: true registers it at start)"
    )


def test_a_schema_the_run_would_not_find_fails_the_check(tmp_path: Path) -> None:
    code, lines = check(
        tmp_path,
        {"url": "mock://check", "auto_register": False, "basic_auth_user_info": "al:secret99"},
    )
    assert code == ExitCode.BAD_INPUT
    assert lines[-2].startswith("✗ registry schema registry mock://check: topic 'transactions'")
    assert "secret99" not in "\n".join(lines)


def test_an_unreachable_registry_fails_the_check_without_its_password(tmp_path: Path) -> None:
    code, lines = check(
        tmp_path, {"url": "http://u:hunter22@127.0.0.1:9", "config": {"max.retries": 0}}
    )
    assert code == ExitCode.BAD_INPUT
    assert lines[-2].startswith("✗ registry schema registry http://u:**********@127.0.0.1:9")
    assert "hunter22" not in "\n".join(lines)
