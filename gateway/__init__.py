"""The gateway's cloud side: the durable outbox, the MQTT uplink, commands, and the agent
that wires them to the edge drivers (`python -m gateway run …`)."""
