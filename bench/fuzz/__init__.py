"""The fuzzer: junk from one gateway's account to the real cloud while another gateway raises
valid smoke alarms (`python -m bench.fuzz`; see bench/fuzz/__main__.py)."""
