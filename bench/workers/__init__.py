"""Ingest workers, 1 against 2, on the cluster shape (issue 12).

    .venv/bin/python -m bench.workers [--quick] [--runs 3] [--json FILE]

Starts a real 3-node RabbitMQ cluster (`tests.servers.RabbitCluster`) and a real PostgreSQL
(`tests.servers.PostgreSQL`, fsync on), a generated site (`bench/sitegen.py`) whose `--gateways`
are chosen so the crc32 hash puts the same number in each of the `--shards` shard queues, and
one paho client per gateway (its own account, the nodes in turn, commands at QoS 0). The cloud
runs as `python -m cloud` processes on that PostgreSQL with `SC_CLOUD_INGEST_SHARDS`, each a
worker holding a share of the shards (cloud/ingest/shards.py). Each run:

1. **drain, 1 worker**: the worker is stopped (SIGSTOP) while `--events` call presses and
   smoke alarms are published and queued in the shard queues, then let go (SIGCONT); events/s =
   events ÷ (all stored − let go), from the workers' `GET /api/stats`; CPU (psutil, user +
   system) of the workers, the three RabbitMQ nodes and PostgreSQL's processes over the drain;
2. a second worker starts and the two share the shards; **drain, 2 workers**, the same;
3. **failover**: `--rate` events/s for `--seconds` from every gateway; after `--kill-after` s
   the older worker is killed (kill -9). From the events table: when the survivor stored the
   first event of the dead worker's gateways, when it had stored all they had sent by then,
   and publish → received_at before and after the kill. The survivor is the next run's one
   worker.

The summary is the median of `--runs` runs, and the ratio 2 workers ÷ 1 worker. Every process
is stopped by its own pid at the end, on an error and on Ctrl-C (docs/benchmarks.md).
"""
