"""The gateway side of `python -m bench.voice_latency`: one gateway agent (gw-ld01 of the given
site, simulated hardware; its microphone a WAV file, its speaker a WAV recorder) in a process
of its own, so its CPU and memory are its own. Driven on stdin, one command a line:
`press` (the call button; answers `pressed <unix time of the release>`), `quit`.

    python -m bench.voice_gateway SITE PORT PASSWORD WORKDIR MICROPHONE_WAV [SPEAKER_WAV]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams, UplinkOptions


def main(argv: list[str]) -> int:
    site, port, password, workdir, microphone, *speaker = argv
    logging.basicConfig(level=logging.WARNING)
    agent = GatewayAgent(
        load_gateway_config(site, "gw-ld01"),
        broker=BrokerParams(port=int(port), username="gw-ld01", password=password),
        outbox_path=Path(workdir) / "gw-ld01.sqlite3",
        simulate=True,
        options=AgentOptions(heartbeat_s=3600, uplink=UplinkOptions(drain_s=0.5)),
    )
    assert agent.hardware is not None
    playback = speaker[0] if speaker else str(Path(workdir) / "spk.wav")
    agent.hardware.audio = {"capture": microphone, "playback": playback}
    agent.start()
    if not agent.wait_connected(15):
        print("error not connected", flush=True)
        return 1
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "press":
                agent.hardware.press_call("call-0101", hold_s=0.1)
                print(f"pressed {time.time():.6f}", flush=True)
            elif line.strip() == "quit":
                break
    finally:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
