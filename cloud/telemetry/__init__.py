"""The telemetry store: `open_store(url)` (cloud/telemetry/open.py) gives a `TelemetryStore`
(SQLite or InfluxDB)."""
