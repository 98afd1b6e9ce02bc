"""The embedded default broker for the demo: amqtt in-process, loopback only, with a password
per account and per-gateway topic ACLs like the Mosquitto configuration we ship.

amqtt speaks MQTT 3.1.1 only and has no shared subscriptions; nothing on the core path needs
them. For production use Mosquitto (deploy/mosquitto/).
"""

from __future__ import annotations

import secrets
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from contract import topics


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Subscriptions(dict[str, list[tuple[Any, int]]]):
    """amqtt 0.12's table of subscriptions (topic filter → sessions), iterated on a copy.

    Its broadcast loop walks the table across awaits (the ACL check, a send), so a client
    subscribing to a new filter meanwhile ended the walk with "dictionary changed size during
    iteration" and the message went to no one after that point (seen at the demo's start, as
    the gateways subscribe). Iterating a snapshot sends it to every subscription that existed
    when the broadcast began."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> list[tuple[str, list[tuple[Any, int]]]]:  # type: ignore[override]
        return list(super().items())


class EmbeddedBroker:
    def __init__(self, workdir: Path, gateways: list[str], *, port: int = 0) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.passwords = {name: secrets.token_urlsafe(12) for name in ["cloud", *gateways]}
        self._gateways = gateways
        self._broker: Broker | None = None

    def _config(self) -> dict[str, object]:
        hasher = PasswordHash((Argon2Hasher(),))
        pwfile = self.workdir / "broker-passwd"
        pwfile.write_text(
            "".join(f"{name}:{hasher.hash(pw)}\n" for name, pw in self.passwords.items())
        )
        pwfile.chmod(0o600)
        publish = {"cloud": [f"{topics.ROOT}/+/cmd/#"]}
        subscribe = {"cloud": [f"{topics.ROOT}/#"]}
        for gw in self._gateways:
            publish[gw] = [
                f"{topics.ROOT}/{gw}/{c}" for c in ("status", "event", "telemetry", "reply")
            ]
            subscribe[gw] = [f"{topics.ROOT}/{gw}/cmd/#"]
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(pwfile)},
                "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
                    "publish_acl": publish,
                    # amqtt 0.12's config class knows only `acl` for subscriptions
                    "acl": subscribe,
                },
            },
        }

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._broker = Broker(self._config())
        self._broker._subscriptions = _Subscriptions()
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
