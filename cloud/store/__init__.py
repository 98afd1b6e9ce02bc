"""The telemetry store: `open_store(url)` gives a `TelemetryStore` (SQLite or InfluxDB)."""

from cloud.store.base import Sample, StoreError, TelemetryStore, open_store

__all__ = ["Sample", "StoreError", "TelemetryStore", "open_store"]
