"""The rules core under load (`python -m bench.rules_load`; see bench/rules_load/__main__.py)."""
