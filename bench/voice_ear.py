"""Mouth-to-ear, the duty room to the home, for `bench.voice_latency`: the operator's side
sends a 20 ms click every half second (`ClickTrack`, the send time of each kept), and the
gateway's speaker is a named pipe (`Ear`) read as it is written, the arrival of each click
timed. The gateway's speaker writes a frame as soon as it is decoded, so the delay is the
network, the jitter buffer and decoding — not a real speaker's playout buffer or a real
microphone's capture buffer (each some 10–40 ms more on real hardware). Resolution: one
frame (20 ms)."""

from __future__ import annotations

import fractions
import os
import threading
import time
from pathlib import Path

import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from av.audio.frame import AudioFrame

RATE = 48_000
FRAME = 960  # 20 ms
CLICK_HZ = 1700.0
EVERY = 25  # frames between clicks (0.5 s)


class ClickTrack(MediaStreamTrack):
    """Silence with a 20 ms tone burst every half second, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []  # wall time each click frame was handed to the sender
        self._n = 0
        self._start: float | None = None
        t = np.arange(FRAME) / RATE
        self._click = (0.6 * 32767 * np.sin(2 * np.pi * CLICK_HZ * t)).astype("<i2")
        self._silence = np.zeros(FRAME, dtype="<i2")

    async def recv(self) -> AudioFrame:
        import asyncio

        if self._start is None:
            self._start = time.time()
        due = self._start + self._n * FRAME / RATE
        await asyncio.sleep(max(0.0, due - time.time()))
        click = self._n % EVERY == EVERY - 1
        samples = self._click if click else self._silence
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._n * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += 1
        if click:
            self.sent.append(time.time())
        return frame


class Ear:
    """The gateway's speaker as a named pipe (a `.wav` name, so the gateway writes WAV to
    it): every time it is opened, read to the end, timing each click's onset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.onsets: list[float] = []
        self._stop = False
        self._thread = threading.Thread(target=self._listen, name="ear", daemon=True)
        self._thread.start()

    def delays(self, sent: list[float], window: float = 0.45) -> list[float]:
        """Each click heard: its delay after the latest click sent before it."""
        found = []
        for onset in self.onsets:
            before = [s for s in sent if s <= onset]
            if before and onset - before[-1] < window:
                found.append(onset - before[-1])
        return found

    def close(self) -> None:
        self._stop = True
        try:  # wake a reader waiting for a writer
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        self._thread.join(5)

    def _listen(self) -> None:
        while not self._stop:
            with open(self.path, "rb", buffering=0) as pipe:
                self._read(pipe)

    def _read(self, pipe: object) -> None:
        buffer = b""
        while b"data" not in buffer:  # the WAV header, as long as the muxer makes it
            chunk = pipe.read(4096)  # type: ignore[attr-defined]
            if not chunk:
                return
            buffer += chunk
        pcm = buffer[buffer.index(b"data") + 8 :]
        loud = False
        while True:
            while len(pcm) >= 2 * 240:
                block = np.frombuffer(pcm[: 2 * 240], dtype="<i2").astype(np.float64) / 32768
                pcm = pcm[2 * 240 :]
                rms = float(np.sqrt((block**2).mean()))
                if rms > 0.05 and not loud:
                    self.onsets.append(time.time())
                loud = rms > 0.02
            chunk = pipe.read(4096)  # type: ignore[attr-defined]
            if not chunk:
                return
            pcm += chunk
