"""One-key voice, measured: `python -m bench.voice_latency` (docs/voice.md, docs/benchmarks.md).

Real parts on loopback: Mosquitto, the cloud (in this process), the gateway agent in a process
of its own (bench/voice_gateway.py; its microphone a 1000 Hz tone WAV), and aiortc in this
process standing in for the duty room's browser. For each of `--calls` presses:

- press → ringing: from the button's release (the gateway's clock; same machine) until the
  call rings on the live stream (the board's bar appears);
- answer → heard: from the operator's answer (POST /api/calls/C/answer) until the first audio
  frame that carries the resident's tone reaches the "browser";
- press → heard: the two with an operator who answers at once (what the machine adds to a
  person's reaction time).

Then one call is held `--hold` seconds while the gateway process's CPU and RSS are sampled
(and the same before any call: idle; and idle for the same gateway on the board profile
without audio, which never loads aiortc). During that call the operator's side clicks every
half second and the gateway's speaker is a pipe read as it is written: the duty room → home
mouth-to-ear delay (bench/voice_ear.py says what it includes). Not measured: the load of a
street's alarms meanwhile.

    .venv/bin/python -m bench.voice_latency                  # 20 calls, 15 s held; ~1 min
    .venv/bin/python -m bench.voice_latency --calls 50 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.procs import Child, python_tool
from bench.stats import summary_ms
from bench.voice_ear import ClickTrack, Ear
from cloud.live.hub import LiveHub
from tests.cloud.conftest import cloud_settings, running_cloud, signed_in
from tests.gateway.helpers import DEMO_SITE
from tests.servers import Mosquitto
from tests.voice.tones import write_tone

TONE_HZ = 1000.0


def has_tone(frame: Any, hz: float = TONE_HZ) -> bool:
    """Whether one decoded frame is mostly the tone (its energy at `hz` over the frame's)."""
    samples = frame.to_ndarray().astype(np.float64).reshape(-1, len(frame.layout.channels))
    mono = samples.mean(axis=1)
    if not mono.any():
        return False
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / frame.sample_rate)
    near = spectrum[np.abs(freqs - hz) < 100].sum()
    return bool(near > 0.5 * spectrum.sum())


async def first_tone(track: MediaStreamTrack) -> float:
    """The time the first frame with the tone arrives."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return float("nan")
        if has_tone(frame):
            return time.time()


async def wait_call(hub: LiveHub, status: str) -> tuple[dict[str, Any], float]:
    """The next call message with `status` on the live stream, and when it came."""
    sub = hub.subscribe()
    try:
        async with asyncio.timeout(15):
            while True:
                message = await sub.queue.get()
                if message.event == "call":
                    call: dict[str, Any] = message.body()["call"]
                    if call["status"] == status:
                        return call, time.time()
    finally:
        hub.unsubscribe(sub)


async def one_call(
    gateway: Child,
    hub: LiveHub,
    op: httpx.AsyncClient,
    hold_s: float = 0.0,
    clicks: ClickTrack | None = None,
) -> dict[str, float]:
    ringing = asyncio.create_task(wait_call(hub, "ringing"))
    await asyncio.sleep(0)  # subscribed before the press
    assert gateway.proc is not None and gateway.proc.stdin is not None and gateway.reader
    gateway.proc.stdin.write("press\n")
    gateway.proc.stdin.flush()
    line = await asyncio.to_thread(gateway.reader.wait_for, r"^pressed (\S+)$", 10)
    pressed = float(line.group(1))
    call, rang = await ringing
    pc = RTCPeerConnection()
    heard: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def tone_came(task: asyncio.Task[float]) -> None:
        if not heard.done():
            heard.set_result(task.result())

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        asyncio.ensure_future(first_tone(track)).add_done_callback(tone_came)

    await pc.setRemoteDescription(RTCSessionDescription(call["sdp"], "offer"))
    if clicks is not None:
        pc.addTrack(clicks)  # the operator's side clicks (mouth-to-ear, bench/voice_ear.py)
    else:
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly"  # the bench listens only
    await pc.setLocalDescription(await pc.createAnswer())
    answered = time.time()
    resp = await op.post(f"/api/calls/{call['id']}/answer", json={"sdp": pc.localDescription.sdp})
    resp.raise_for_status()
    heard_at = await asyncio.wait_for(heard, 15)
    if hold_s:
        await asyncio.sleep(hold_s)
    (await op.post(f"/api/calls/{call['id']}/hangup")).raise_for_status()
    await pc.close()
    alarm = call["alarm_id"]
    (await op.post(f"/api/alarms/{alarm}/accept")).raise_for_status()
    done = {"outcome": "test", "note": "bench"}
    (await op.post(f"/api/alarms/{alarm}/resolve", json=done)).raise_for_status()
    return {
        "press_to_ringing_s": rang - pressed,
        "answer_to_heard_s": heard_at - answered,
        "press_to_heard_s": (rang - pressed) + (heard_at - answered),
    }


def sample(proc: psutil.Process, seconds: float, every: float = 0.5) -> dict[str, float]:
    """The process's CPU (cores) and RSS (MB) over `seconds`."""
    rss: list[float] = []
    proc.cpu_percent(None)
    start = proc.cpu_times()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(every)
        rss.append(proc.memory_info().rss / 1e6)
    end = proc.cpu_times()
    cpu = (end.user + end.system - start.user - start.system) / (time.monotonic() - t0)
    return {"cpu_cores": cpu, "rss_mb_max": max(rss), "rss_mb_median": statistics.median(rss)}


async def run(calls: int, hold_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sc-voice-bench-"))
    site = work / "site.yaml"
    site.write_text(
        DEMO_SITE.read_text("utf-8").replace("profile: rpi4-standard", "profile: rpi4-voice", 1),
        "utf-8",
    )
    tone = write_tone(work / "resident.wav", TONE_HZ, seconds=5)
    broker = Mosquitto()
    for user in ("cloud", "gw-ld01", "gw-ld02"):
        broker.add_user(user)
    broker.start()

    ear = Ear(work / "ear.wav")  # the gateway's speaker, read as it is written

    def gateway_on(site_file: Path, name: str) -> Child:
        return Child(
            name,
            python_tool(
                "bench.voice_gateway", str(site_file), str(broker.port),
                broker.users["gw-ld01"], str(work), str(tone), str(ear.path),
            ),
            work / f"{name}.log",
            stdin=True,
        )  # fmt: skip

    gateway = gateway_on(site, "gateway")
    try:
        # the same gateway on the profile without audio first: what voice adds at rest
        plain = gateway_on(DEMO_SITE, "gateway-no-voice")
        try:
            plain.start()
            no_voice = sample(psutil.Process(plain.pid), 5.0)
            plain.finish()
        finally:
            plain.stop()
        async with running_cloud(cloud_settings(work, broker, site_file=site)) as cloud:
            await asyncio.to_thread(gateway.start)
            proc = psutil.Process(gateway.pid)
            op = await signed_in(cloud.url, "op")
            try:
                idle = await asyncio.to_thread(sample, proc, 5.0)
                trials = [await one_call(gateway, cloud.cloud.hub, op) for _ in range(calls)]
                clicks = ClickTrack()
                held = asyncio.create_task(
                    one_call(gateway, cloud.cloud.hub, op, hold_s, clicks=clicks)
                )
                await asyncio.sleep(2.0)  # ringing, answered, audio flowing
                during = await asyncio.to_thread(sample, proc, hold_s - 3.0)
                await held
            finally:
                await op.aclose()
            gateway.finish()
    finally:
        gateway.stop()
        ear.close()
        broker.cleanup()
    return {
        "calls": calls,
        "latency_ms": {
            key: summary_ms([t[key] for t in trials])
            for key in ("press_to_ringing_s", "answer_to_heard_s", "press_to_heard_s")
        },
        "mouth_to_ear_ms": summary_ms(ear.delays(clicks.sent)),
        "clicks_sent": len(clicks.sent),
        "gateway_idle_without_voice": no_voice,
        "gateway_idle": idle,
        "gateway_in_call": during,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds of the measured call")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.calls, args.hold))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
