"""One-key voice in Debian's Chromium against the real gateway agent, cloud and Mosquitto:
the home's microphone plays a 1000 Hz tone, the duty room's fake microphone a 1700 Hz one;
each side finds the other's tone (FFT) in what it receives. Then hang-ups from each side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from contract.voice import CallState
from edge.drivers.call_button import Indicator
from gateway.agent import GatewayAgent
from tests.cloud.conftest import RunningCloud, eventually
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, VIEWPORT, board_live
from tests.voice.conftest import OPERATOR_HZ, RESIDENT_HZ, button
from tests.voice.tones import loudest

#: The peak the browser's analyser finds (bins of 48000/8192 ≈ 5.9 Hz).
HEARD = """() => {
  if (!session || !session.analyser) return null;
  const a = session.analyser, bins = new Float32Array(a.frequencyBinCount);
  a.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return {hz: best * a.context.sampleRate / a.fftSize, db: bins[best]};
}"""


@pytest.fixture
async def duty_room(tmp_path: Path, tones: dict[str, Path]) -> AsyncIterator[BrowserContext]:
    """Chromium whose microphone is the operator's tone (granted without asking)."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tones['operator']}",
                "--autoplay-policy=no-user-gesture-required",
            ],
            viewport=VIEWPORT,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            await context.close()


async def ringing(page: Page, agent: GatewayAgent) -> None:
    assert agent.hardware is not None
    await asyncio.to_thread(agent.hardware.press_call, "call-0101")
    await expect(page.locator("#calls .call.ringing")).to_contain_text("语音呼叫")
    assert button(agent).showing is Indicator.RINGING


async def test_accepting_answers_the_call_each_side_hears_the_other_and_the_operator_hangs_up(
    voice_cloud: RunningCloud, make_voice_agent: Any, duty_room: BrowserContext, tmp_path: Path
) -> None:
    agent = make_voice_agent()
    page = duty_room.pages[0]
    await board_live(page, voice_cloud.url)
    other = await duty_room.new_page()  # a second duty-room screen
    await other.goto(voice_cloud.url)
    await expect(other.locator("#conn")).to_have_text("实时连接正常")
    await ringing(page, agent)
    await expect(other.locator("#calls .call.ringing .call-answer")).to_be_visible()  # rings too

    await page.locator("#board button.accept").click()  # 受理: one click answers the call
    call = page.locator("#calls .call.connected")
    await expect(call).to_contain_text("通话中")
    await expect(call.locator(".call-by")).to_have_text("op")
    # the other screen stops ringing and says who took it
    await expect(other.locator("#calls .call.connected .call-by")).to_have_text("op")
    await expect(other.locator("#calls .call-answer")).to_have_count(0)
    await other.close()
    await eventually(lambda: button(agent).showing is Indicator.CONNECTED)

    async def hears_the_resident() -> bool:
        peak = await page.evaluate(HEARD)
        return peak is not None and abs(peak["hz"] - RESIDENT_HZ) < 12 and peak["db"] > -60

    await eventually(hears_the_resident, timeout=10, every=0.2)
    await asyncio.sleep(1.0)  # a second of the operator's voice for the home to record

    await call.locator(".call-hangup").click()
    await expect(page.locator("#calls .call.ended")).to_contain_text("挂断方：op")
    # the case was accepted by the same click: "help is coming" once the call is over (and
    # the LED changes after the speaker's recording is closed)
    await eventually(lambda: button(agent).showing is Indicator.HELP_COMING)
    assert agent.voice is not None and agent.voice.engine.state("call-0101") is None
    hz, prominence, seconds = loudest(tmp_path / "speaker.wav", skip_s=0.3)
    assert abs(hz - OPERATOR_HZ) < 5 and prominence > 100, (hz, prominence, seconds)
    assert seconds > 0.5
    assert await page.evaluate("session") is None  # the browser let go of its microphone


async def test_the_resident_hangs_up_the_board_says_so_and_the_operator_calls_back(
    voice_cloud: RunningCloud, make_voice_agent: Any, duty_room: BrowserContext
) -> None:
    agent = make_voice_agent()
    page = duty_room.pages[0]
    await board_live(page, voice_cloud.url)
    await ringing(page, agent)

    await page.locator("#calls .call-answer").click()  # 接听 without accepting the case
    await expect(page.locator("#calls .call.connected")).to_be_visible()
    assert agent.voice is not None
    await eventually(lambda: agent.voice.engine.state("call-0101") is CallState.CONNECTED)

    assert agent.hardware is not None
    await asyncio.to_thread(agent.hardware.press_call, "call-0101")  # the resident hangs up
    ended = page.locator("#calls .call.ended")
    await expect(ended).to_contain_text("挂断方：居民")
    await expect(ended.locator(".call-reason")).to_have_text("居民挂断")
    assert await page.evaluate("session") is None

    # the case's timeline, in Chinese
    await page.locator("#board tbody tr").first.locator("[data-act=open]").first.click()
    history = page.locator("#case-history")
    await expect(history).to_contain_text("接听语音")
    await expect(history).to_contain_text("居民挂断")

    # 回拨 from the case: it rings at the home and this page answers it by itself
    await page.locator("#case-call #call-back").click()
    back = page.locator("#case-call .call.connected")
    await expect(back).to_contain_text("通话中")
    await eventually(lambda: agent.voice.engine.state("call-0101") is CallState.CONNECTED)
    assert button(agent).showing is Indicator.CONNECTED

    async def hears_the_resident() -> bool:
        peak = await page.evaluate(HEARD)
        return peak is not None and abs(peak["hz"] - RESIDENT_HZ) < 12 and peak["db"] > -60

    await eventually(hears_the_resident, timeout=10, every=0.2)
    await back.locator(".call-hangup").click()  # hung up from the case
    await expect(page.locator("#case-call .call.ended")).to_contain_text("挂断方：op")
    await eventually(lambda: agent.voice.engine.state("call-0101") is None)
    await page.locator("#case-close").click()
    await page.locator("#board tbody tr").first.locator("[data-act=open]").first.click()
    await expect(history).to_contain_text("op 回拨 gw-ld01/call-0101")
    await expect(history).to_contain_text("居民 语音结束")


async def test_the_microphone_fails_the_alarm_arrives_and_the_board_says_why(
    voice_cloud: RunningCloud, make_voice_agent: Any, duty_room: BrowserContext, tmp_path: Path
) -> None:
    agent = make_voice_agent(capture=tmp_path / "unplugged.wav")
    page = duty_room.pages[0]
    await board_live(page, voice_cloud.url)
    assert agent.hardware is not None
    await asyncio.to_thread(agent.hardware.press_call, "call-0101")
    await expect(page.locator("#board tbody tr")).to_have_count(1)  # the alarm, as ever
    await expect(page.locator("#board tbody tr")).to_contain_text("一键呼叫")
    ended = page.locator("#calls .call.ended")
    await expect(ended.locator(".call-reason")).to_have_text(
        f"音频设备故障：找不到麦克风 {tmp_path / 'unplugged.wav'}"
    )
    await page.locator("#board button.accept").click()  # 受理 still works, with no call
    await eventually(lambda: button(agent).showing is Indicator.HELP_COMING)
    assert await page.evaluate("session") is None
