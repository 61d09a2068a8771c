"""The transaction dataset: read once from S3 or a local file (CSV, JSON Lines or Parquet),
validated, and kept pre-serialized.

Each valid row becomes the exact bytes of its Kafka message value (`codec`), so the hot path never
touches pydantic or json: it picks stored bytes, or splices a fresh id and timestamp into them.
`location` parses where the dataset is, `s3` reaches S3, `columns` decides which columns a
message carries (`Reading`, from `dataset.*` settings), `parse` (CSV), `jsonl` and `parquet` read
the formats, `columnar` checks and encodes rows a column at a time, `rows` is the one validation
path they share, `load` puts them together, `synth` generates a realistic dataset.

`Dataset.columns` (name -> `ColumnType`) lists the kept extra columns every value carries after
the seven `FIELDS`, in that order: what a message schema extends the seven fields with.
"""

from supervisor.dataset.codec import FIELDS, ID_SPAN
from supervisor.dataset.columns import COLUMN_TYPES, FORMATS, ColumnType, Format, Reading
from supervisor.dataset.load import load_dataset
from supervisor.dataset.location import DatasetLocation, LocalFile, S3Object, parse_location
from supervisor.dataset.model import Dataset, InvalidRow, Transaction
from supervisor.dataset.parse import parse_csv
from supervisor.dataset.s3 import S3Location, s3_client

__all__ = [
    "COLUMN_TYPES",
    "FIELDS",
    "FORMATS",
    "ID_SPAN",
    "ColumnType",
    "Dataset",
    "DatasetLocation",
    "Format",
    "InvalidRow",
    "LocalFile",
    "Reading",
    "S3Location",
    "S3Object",
    "Transaction",
    "load_dataset",
    "parse_csv",
    "parse_location",
    "s3_client",
]
