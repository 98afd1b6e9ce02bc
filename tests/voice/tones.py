"""Tones for the voice tests: a WAV of one frequency to play as a microphone, and the loudest
frequency (by FFT) of what a side received."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_tone(path: Path, hz: float, seconds: float = 2.0, rate: int = 48_000) -> Path:
    """A mono 16-bit WAV of a pure tone at half scale."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """The samples of a 16-bit WAV (first channel) as floats, and its rate."""
    with wave.open(str(path), "rb") as src:
        rate, channels = src.getframerate(), src.getnchannels()
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    return data[::channels].astype(np.float64) / 32768, rate


def peak_hz(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """The loudest frequency (Hz) above 100 Hz and how far it stands out of the rest (the
    peak's magnitude over the median's)."""
    windowed = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[freqs < 100] = 0
    index = int(np.argmax(spectrum))
    return float(freqs[index]), float(spectrum[index] / (np.median(spectrum) + 1e-12))


def loudest(path: Path, skip_s: float = 0.0) -> tuple[float, float, float]:
    """(peak Hz, prominence, seconds) of a recorded WAV, after its first `skip_s` seconds."""
    samples, rate = read_wav(path)
    samples = samples[int(skip_s * rate) :]
    if len(samples) < rate // 10:
        return 0.0, 0.0, len(samples) / rate
    hz, prominence = peak_hz(samples, rate)
    return hz, prominence, len(samples) / rate
