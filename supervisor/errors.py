"""Error types and the process exit codes they map to.

Every error a user can cause (bad config, bad dataset, unreachable services) is raised as a
`SupervisorError` whose message is one line naming the culprit and what to do; the CLI prints that
line and exits with the error's code. A traceback is shown only with `--debug`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    """Stopped on request and every produced message was delivered."""
    INTERNAL = 1
    """An unexpected error: a bug. Run again with --debug for the traceback."""
    BAD_INPUT = 2
    """Bad config, dataset or environment; nothing was sent."""
    UNDELIVERED = 3
    """Stopped, but some messages failed or were still undelivered at exit."""
    KAFKA_UNREACHABLE = 4
    """Kafka could not be reached within --startup-timeout."""
    PROFILE_CRASHED = 5
    """A profile kept crashing past its restart limit."""


class SupervisorError(Exception):
    """An error with a one-line, user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(SupervisorError):
    """The configuration file, an environment variable or a preset is invalid."""

    exit_code = ExitCode.BAD_INPUT


class DatasetError(SupervisorError):
    """The dataset cannot be read, or holds no valid transaction."""

    exit_code = ExitCode.BAD_INPUT


class KafkaUnavailableError(SupervisorError):
    """Kafka was not reachable within the startup timeout."""

    exit_code = ExitCode.KAFKA_UNREACHABLE


class RegistryError(SupervisorError):
    """The Schema Registry refused a schema, or could not be reached, at start."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The registry's HTTP status when it answered (404: no such subject or schema)."""
