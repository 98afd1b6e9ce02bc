"""One-line structured logs on stderr: `ts=… level=… logger=… event="…" key=value …`.

Code logs a short description followed by key=value pairs ("uplink connected broker=h:p");
the formatter quotes the description as `event` and keeps everything on one line.
"""

from __future__ import annotations

import logging
import re
import sys
import time

_FIRST_FIELD = re.compile(r"\s(?=[A-Za-z_][A-Za-z0-9_]*=)")


def _quote(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"' if (" " in text or "=" in text or not text) else text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        parts = _FIRST_FIELD.split(message, maxsplit=1)
        event = parts[0].strip()
        fields = parts[1].replace("\n", "\\n") if len(parts) > 1 else ""
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f"logger={record.name} event={_quote(event)}"
        )
        if fields:
            line += f" {fields}"
        if record.exc_info:
            line += f" exc={_quote(self.formatException(record.exc_info))}"
        return line


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr, one line per record (replaces any handlers on the root logger)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
