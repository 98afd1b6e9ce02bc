"""The fault suite: real processes (the shipped Mosquitto, `python -m cloud`, gateway agents
with simulated devices) under real faults (kill -9, a cut uplink, a full disk), measured for
lost, doubled and reordered life-safety events. `python -m tests.faults --help`; the pytest
files here run each scenario once, small. See docs/reliability.md.
"""
