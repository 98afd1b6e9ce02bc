"""The broker tier's cost per message in the cluster shape, beside one Mosquitto in the same run.

    .venv/bin/python -m bench.cluster_capacity [--quick] [--json FILE]

Starts a real 3-node RabbitMQ cluster (`tests.servers.RabbitCluster`, ~30 s) and one Mosquitto
(`tests.servers.Mosquitto`, the harness's copy of the shipped config). On the cluster, the
quorum queue `sc.ingest` is declared and bound exactly as the cloud does
(`cloud/transport/amqp.py`: `x-queue-type: quorum`, one binding on `amq.topic` per channel the
cloud consumes) and one aio-pika consumer (its own process, the cloud's prefetch) acknowledges
each message, as the cloud does after its commit. On Mosquitto the consumer is a paho QoS 1
subscription to the same topics. Both are driven by the same publishers: `--publishers`
processes, each with `--clients` paho clients (QoS 1, MQTT 3.1.1, TCP_NODELAY, one gateway
account each, spread over the cluster's nodes), publishing contract-shaped messages built with
`contract.models`: telemetry batches of `--readings` readings, and one life-safety event in
every `--event-every` messages.

Two phases per broker and run:

- **blast**: `--messages` messages as fast as the publishers go (each client keeps at most
  `--window` publishes unacknowledged, so a send time is when the message went to the socket,
  not when it joined paho's queue);
- **paced**: `--paced-rate` messages/s in all for `--paced-seconds` (latency at a load the
  broker carries).

For each: messages/s end to end (count ÷ (last consumed − first sent)), publish → consume
latency, and CPU seconds per 1,000 messages (user + system time from /proc/PID/stat) of the
broker (the three beam.smp processes summed, or mosquitto), the publishers (summed) and the
consumer. The whole is repeated `--runs` times, RabbitMQ and Mosquitto alternating; the
summary is the median of the runs. Before the runs, `--connections` idle MQTT sessions (a
gateway's CONNECT, then nothing) are opened to each broker: its memory and CPU per connection.
Every process is stopped by its own pid at the end, on error and on Ctrl-C.
"""
