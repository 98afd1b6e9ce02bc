"""What every part of the rules file is made of: a strict model (unknown keys are errors) and
the field types (a level, a rule id, a model or policy name, a duration)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Level = Annotated[int, Field(ge=1, le=4, description="1 = I red … 4 = IV blue")]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=63)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Seconds = Annotated[float, Field(ge=0, le=30 * 86400)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
