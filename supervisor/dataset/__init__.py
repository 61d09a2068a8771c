"""The transaction dataset: read once from S3 or a local CSV, validated, and kept pre-serialized.

Each valid row becomes the exact bytes of its Kafka message value (`codec`), so the hot path never
touches pydantic or json: it picks stored bytes, or splices a fresh id and timestamp into them.
`location` parses where the dataset is, `parse` reads a CSV, `s3` reaches S3, `load` puts them
together, `synth` generates a realistic one.
"""

from supervisor.dataset.codec import FIELDS, ID_SPAN
from supervisor.dataset.load import load_dataset
from supervisor.dataset.location import DatasetLocation, LocalFile, S3Object, parse_location
from supervisor.dataset.model import Dataset, InvalidRow, Transaction
from supervisor.dataset.parse import parse_csv
from supervisor.dataset.s3 import S3Location, s3_client

__all__ = [
    "FIELDS",
    "ID_SPAN",
    "Dataset",
    "DatasetLocation",
    "InvalidRow",
    "LocalFile",
    "S3Location",
    "S3Object",
    "Transaction",
    "load_dataset",
    "parse_csv",
    "parse_location",
    "s3_client",
]
