"""Configuration: frozen settings models and the two ways to build them.

`Config.from_yaml(path)` reads a config file of named volume profiles; `Config.from_env()` is the
seed's single-profile mode, used when there is no config file. Both apply the seed's environment
overrides (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `ENDPOINT_URL`, `KEY`, `SECRET`) and turn
every problem into one `ConfigError` line naming the file, the key path and what is wrong.

Secrets (the S3 keys and secret-like `kafka.config` properties) never appear in a repr, a
`model_dump` or an error message.

The package's modules, from the bottom up:

- `types`: annotated field types and validators shared by the models, secret redaction;
- `streams`: rate schedules, event-time disorder, fraud scenarios and their labels;
- `shard`: how one of N processes running a config takes its part of the rates;
- `models`: `Config` and its sections (Kafka, dataset, profiles, metrics);
- `messages`: pydantic's validation errors as one-line `ConfigError` messages;
- `loading`: reading YAML, `${VAR}` expansion, presets, env overrides (behind `Config.from_*`).
"""

from supervisor.config.evaluation import EvaluationSettings
from supervisor.config.loading import find_preset
from supervisor.config.models import (
    DEFAULT_DATASET_URI,
    EMBEDDED,
    PRODUCER_DEFAULTS,
    Config,
    DatasetSettings,
    KafkaSettings,
    MetricsSettings,
    ProfileSettings,
    S3Settings,
)
from supervisor.config.shard import Shard, ShardSettings
from supervisor.config.streams import (
    DIURNAL_CURVE,
    AmountOutlier,
    BurstSchedule,
    CardTesting,
    DiurnalSchedule,
    Duplicates,
    IdMode,
    KafkaTimestampMode,
    Labels,
    LateEvents,
    MerchantCompromise,
    MessageKey,
    OutOfOrder,
    RampSchedule,
    Scenario,
    ScenarioKind,
    Schedule,
    TimestampMode,
    TimeWindow,
    Velocity,
    WindowsSchedule,
)
from supervisor.config.types import KafkaValue, Loc
from supervisor.redaction import REDACTED, is_secret_key

__all__ = [
    "DEFAULT_DATASET_URI",
    "DIURNAL_CURVE",
    "EMBEDDED",
    "PRODUCER_DEFAULTS",
    "REDACTED",
    "AmountOutlier",
    "BurstSchedule",
    "CardTesting",
    "Config",
    "DatasetSettings",
    "DiurnalSchedule",
    "Duplicates",
    "EvaluationSettings",
    "IdMode",
    "KafkaSettings",
    "KafkaTimestampMode",
    "KafkaValue",
    "Labels",
    "LateEvents",
    "Loc",
    "MerchantCompromise",
    "MessageKey",
    "MetricsSettings",
    "OutOfOrder",
    "ProfileSettings",
    "RampSchedule",
    "S3Settings",
    "Scenario",
    "ScenarioKind",
    "Schedule",
    "Shard",
    "ShardSettings",
    "TimeWindow",
    "TimestampMode",
    "Velocity",
    "WindowsSchedule",
    "find_preset",
    "is_secret_key",
]
