"""A drill's alarm (应急演练) is marked as one in every text a channel sends, so nobody who
reads or hears it takes it for a real alarm; a real alarm's text carries no such mark."""

from __future__ import annotations

from cloud.alarms.model import Mode
from cloud.notify.base import DRILL_MARK, Notification
from cloud.notify.vendor import spoken, words
from tests.cloud.notify.helpers import alarm


def _told(mode: Mode, reason: str = "notify") -> Notification:
    return Notification(
        key="k",
        alarm=alarm(mode=mode, window_id=3 if mode is Mode.DRILL else None),
        step=0,
        reason=reason,
        target="duty_room",
        name="",
        phone=None,
    )


def test_a_drills_texts_say_drill_and_a_real_alarms_do_not() -> None:
    drill = _told(Mode.DRILL, "escalate")
    assert drill.text_zh().startswith(f"{DRILL_MARK}【升级】")
    assert drill.payload()["alarm"]["mode"] == "drill"
    assert drill.payload()["alarm"]["drill"] == 3
    assert words(drill).lead == "演练升级"
    assert spoken(drill).startswith("演练升级通知，")

    real = _told(Mode.LIVE)
    assert "演练" not in real.text_zh() and "DRILL" not in real.text_zh()
    assert real.payload()["alarm"]["drill"] is None
    assert "演练" not in spoken(real)
