"""The home's audio below the voice engine: the microphone and the speaker.

A device name ending in `.wav` is a file (the simulator's and the tests': a source played as
the microphone, a recorder written as the speaker); anything else is an ALSA device (a USB
speakerphone on the Pi). Opening either can fail (no such device, a broken file): the caller
says so in its Reply, and the alarm has gone already.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

log = logging.getLogger(__name__)

#: What the speaker is written in: WebRTC's own rate, one channel.
RATE = 48_000


def _format(device: str) -> str:
    return "wav" if device.endswith(".wav") else "alsa"


class MediaFailed(Exception):
    """The microphone or the speaker cannot be opened; the message says which and why."""


def microphone(device: str) -> tuple[MediaPlayer, MediaStreamTrack]:
    """The home's microphone as a WebRTC track (a WAV source loops, paced in real time)."""
    try:
        if _format(device) == "wav":
            if not Path(device).is_file():
                raise MediaFailed(f"microphone {device}: no such file")
            player = MediaPlayer(device, loop=True)
        else:
            player = MediaPlayer(device, format="alsa", options={"channels": "1"})
    except MediaFailed:
        raise
    except Exception as exc:  # av.error.* (no such ALSA device, a file av cannot read)
        raise MediaFailed(f"microphone {device}: {exc}") from None
    track = player.audio
    if track is None:
        raise MediaFailed(f"microphone {device}: no audio in it")
    return player, track


class Speaker:
    """The home's speaker: frames from the duty room (or the recorded prompt) written by a
    thread of its own, because an ALSA device blocks while it plays."""

    def __init__(self, device: str) -> None:
        self.device = device
        try:
            kind = _format(device)
            # a WAV written packet by packet (a reader may be following it, as the bench does)
            flush = {"flush_packets": "1"} if kind == "wav" else {}
            self._container = av.open(device, mode="w", format=kind, container_options=flush)
            self._stream = self._container.add_stream("pcm_s16le", rate=RATE, layout="mono")
        except Exception as exc:
            raise MediaFailed(f"speaker {device}: {exc}") from None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._queue: queue.SimpleQueue[AudioFrame | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="voice-speaker", daemon=True)
        self._thread.start()
        self.frames = 0  # frames written

    def play(self, frame: AudioFrame) -> None:
        """Queue one frame (any thread)."""
        self._queue.put(frame)

    def play_file(self, path: Path) -> float:
        """Queue a whole recording; its length in seconds."""
        seconds = 0.0
        with av.open(str(path)) as source:
            for frame in source.decode(audio=0):
                seconds += frame.samples / frame.sample_rate
                self._queue.put(frame)
        return seconds

    def flush(self) -> int:
        """Drop what is queued and not yet played (the rest of the prompt when the duty room
        answers: an ALSA device plays in real time, and the operator must not wait behind
        it); how many frames were dropped."""
        dropped = 0
        while True:
            try:
                frame = self._queue.get_nowait()
            except queue.Empty:
                return dropped
            if frame is None:  # closing: leave that to the writer
                self._queue.put(None)
                return dropped
            dropped += 1

    def close(self) -> None:
        """Write what is queued and close the device (the WAV gets its final length)."""
        self._queue.put(None)
        self._thread.join(10)

    def _write(self) -> None:
        try:
            while (frame := self._queue.get()) is not None:
                for out in self._resampler.resample(frame):
                    for packet in self._stream.encode(out):
                        self._container.mux(packet)
                self.frames += 1
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        except Exception:
            log.exception("speaker failed device=%s", self.device)
        finally:
            self._container.close()


async def pump(track: MediaStreamTrack, speaker: Speaker) -> None:
    """What the duty room says, to the speaker, until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, AudioFrame):
            speaker.play(frame)
