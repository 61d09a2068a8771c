"""streaming-producer: named volume profiles streaming sampled transactions to Kafka."""

__version__ = "0.1.0"
