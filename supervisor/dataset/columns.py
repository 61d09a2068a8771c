"""Which columns a dataset has, which of them a message carries, and how to read the file.

Every reader (CSV, JSON Lines, Parquet) finds the dataset's column names (a CSV header, the first
JSON object's keys, a Parquet schema) and hands them to `Reading.columns_of`, which decides once
per load: the seven `FIELDS` are required, every other column is dropped (`extra_columns: drop`,
the default) or kept (`keep`), a kept column typed as declared in `types` (`string` otherwise).
The result, `Columns`, is what the validator and the codec follow for every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, TypeAlias, get_args

from supervisor.dataset.codec import FIELDS
from supervisor.errors import DatasetError

ColumnType: TypeAlias = Literal["string", "int", "float", "bool"]
"""The type of a kept column: its JSON type in the message (`null` for an empty cell)."""
COLUMN_TYPES: Final[tuple[str, ...]] = get_args(ColumnType)

Format: TypeAlias = Literal["csv", "jsonl", "parquet"]
FORMATS: Final[tuple[str, ...]] = get_args(Format)

_SUFFIXES: Final[Mapping[str, Format]] = MappingProxyType(
    {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
)

_NO_TYPES: Mapping[str, ColumnType] = MappingProxyType({})


def format_of(name: str) -> Format | None:
    """The format a file name's extension says (`.gz` looked through), or None."""
    lower = name.lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if lower.endswith(suffix):
            return fmt
    return None


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of one loaded dataset, as its rows are validated and sent."""

    kept: Mapping[str, ColumnType]
    """The extra columns every message carries after the seven fields, in that order, by type."""
    dropped: tuple[str, ...]
    """The dataset's other extra columns, which no message carries."""

    @property
    def names(self) -> tuple[str, ...]:
        """The columns a row is validated on: the seven fields, then the kept ones."""
        return (*FIELDS, *self.kept)


SEVEN: Final = Columns(_NO_TYPES, ())
"""A dataset of exactly the seven fields."""


@dataclass(frozen=True, slots=True)
class Reading:
    """How to read a dataset: its format and what to do with columns beyond the seven fields."""

    format: Format | None = None
    """None: by the file name's extension (CSV when it says nothing)."""
    extra_columns: Literal["drop", "keep"] = "drop"
    types: Mapping[str, ColumnType] = field(default_factory=lambda: _NO_TYPES)
    """Declared types of extra columns (only with `keep`); undeclared kept ones are strings."""
    entity: str | None = None
    """A kept column naming who a transaction belongs to (e.g. a card), for fraud scenarios."""

    def format_for(self, name: str) -> Format:
        """The format to read the file `name` as."""
        return self.format or format_of(name) or "csv"

    def columns_of(self, names: Sequence[str], source: str) -> Columns:
        """The `Columns` of a dataset whose columns are `names` (the seven fields among them);
        a declared column or the entity missing from `names` is a `DatasetError`."""
        extra = [name for name in dict.fromkeys(names) if name and name not in FIELDS]
        if self.extra_columns == "drop":
            return Columns(_NO_TYPES, tuple(extra))
        missing = [name for name in self.types if name not in extra]
        if self.entity is not None and self.entity not in extra and self.entity not in missing:
            missing.append(self.entity)
        if missing:
            raise DatasetError(
                f"dataset {source}: no column {', '.join(missing)} among "
                f"{', '.join(names)} — add it, or fix dataset.columns / dataset.entity"
            )
        kept = {name: self.types.get(name, "string") for name in extra}
        return Columns(MappingProxyType(kept), ())
