"""Routing policies: who is told of an alarm, through which channels, how long the duty room
has to accept it, and who is told in turn when it does not; the street supervisors' contacts.
`cloud/routing/` carries them out.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from cloud.rules.fields import Level, RuleId, Seconds, Slug, Strict
from contract.site import Phone


class Target(StrEnum):
    DUTY_ROOM = "duty_room"  # the street's duty room (the live board)
    GRID_WORKER = "grid_worker"  # 网格员 of the alarm's grid: the roster's, else the site file's
    STREET_SUPERVISOR = "street_supervisor"  # the street's duty leader (contacts below)
    # roles of the duty roster (cloud/duty/roster.py), resolved when the step fires
    DUTY_OFFICER = "duty_officer"  # 值班员 on shift in the street's duty room
    ON_CALL_LEADER = "on_call_leader"  # 带班领导 on shift (else the street supervisor above)
    EMERGENCY_CONTACTS = "emergency_contacts"  # the residents' contacts of the home


class Via(StrEnum):
    PUSH = "push"  # the live duty-room push (pages open in the browser)
    WEBHOOK = "webhook"  # an outbound HTTP POST, e.g. to an SMS or voice gateway
    SMS_ALIYUN = "sms_aliyun"  # Aliyun SendSms
    SMS_TENCENT = "sms_tencent"  # Tencent Cloud SendSms
    VOICE_ALIYUN = "voice_aliyun"  # Aliyun SingleCallByTts: a call reading the alarm aloud
    VOICE_TENCENT = "voice_tencent"  # Tencent Cloud SendTtsVoice
    WECOM = "wecom"  # WeCom (企业微信) group robot
    DINGTALK = "dingtalk"  # DingTalk (钉钉) custom robot
    FEISHU = "feishu"  # Feishu (飞书) custom bot


class Notify(Strict):
    to: Target
    via: list[Via] = Field(min_length=1, description="Sent through each of these at once")
    fallback: list[Via] = Field(
        default_factory=list,
        description="When a `via` channel fails (refused, or retries would run past the"
        " policy's deliver_within_s): the first of these not yet used for the person",
    )


class Policy(Strict):
    """Who is told, through which channels, and how long the duty room has to accept."""

    name: Slug
    levels: list[Level] = Field(default_factory=list, description="Applies to these levels…")
    rules: list[RuleId] = Field(default_factory=list, description="…or these rules (first)")
    budget_s: Seconds = Field(gt=0, description="Accept within this long, or it escalates")
    deliver_within_s: Seconds | None = Field(
        None, description="The first notifications must be delivered this fast (checked)"
    )
    notify: list[Notify] = Field(default_factory=list, description="Told at once")
    escalate: list[Notify] = Field(
        default_factory=list, description="Told in turn once the budget is spent"
    )
    escalate_every_s: Seconds = Field(60, gt=0, description="Between escalation steps")
    remind_every_s: Seconds = Field(120, gt=0, description="After the chain: reminders")
    reminders: int = Field(5, ge=0, le=100)

    @model_validator(mode="after")
    def _matches_something(self) -> Policy:
        if not self.levels and not self.rules:
            raise ValueError("give levels or rules the policy applies to")
        return self


class Person(Strict):
    name: str = Field(min_length=1, max_length=100)
    phone: Phone


class Contacts(Strict):
    street_supervisors: dict[Slug, Person] = Field(
        default_factory=dict, description="street id → the street's duty leader"
    )


DEFAULT_POLICIES = [
    Policy(
        name="life_safety",
        levels=[1],
        budget_s=60,
        deliver_within_s=15,
        notify=[Notify(to=Target.GRID_WORKER, via=[Via.WEBHOOK])],
        escalate=[
            Notify(to=Target.STREET_SUPERVISOR, via=[Via.PUSH, Via.WEBHOOK]),
            Notify(to=Target.EMERGENCY_CONTACTS, via=[Via.WEBHOOK]),
        ],
    ),
    Policy(
        name="other",
        levels=[2, 3, 4],
        budget_s=1800,
        escalate=[Notify(to=Target.STREET_SUPERVISOR, via=[Via.PUSH])],
        reminders=0,
    ),
]
