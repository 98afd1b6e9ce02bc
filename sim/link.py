"""A network link that can be cut: a TCP relay on loopback to `target_port`. `cut()` drops the
connections and stops listening, as a pulled cable or a dead mobile link would; `restore()`
listens again on the same port.

The demo puts one between each gateway's agent and the broker (cut: the broker publishes the
gateway's last will, the agent's reconnects are refused and its events wait in its outbox;
restored: it reconnects, says it is online and sends what it kept). The browser tests put one
between Chromium and the cloud (Chromium's own offline emulation leaves an open event stream
alone, so it cannot stand in for a blip)."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableLink:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self._server is not None

    async def restore(self) -> None:
        """Listen (the first time on a free port, then on the same one)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        await asyncio.wait(
            [
                asyncio.create_task(pipe(reader, up_writer)),
                asyncio.create_task(pipe(up_reader, writer)),
            ],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for w in (writer, up_writer):
            self._open.discard(w)
            w.transport.abort()
