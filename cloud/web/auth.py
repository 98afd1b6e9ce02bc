"""Sign-in and sign-out (a signed, expiring session cookie; signing out ends the session on
the server too, so a copy of the cookie is refused afterwards)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from cloud.access.users import User
from cloud.web.deps import CurrentUser, SettingsDep, UsersDep, session_ref, start_session

router = APIRouter(prefix="/api", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", response_model=User)
async def login(credentials: Credentials, request: Request, users: UsersDep) -> User:
    # too many failed sign-ins answer 429 with Retry-After, a disabled account 403
    # (cloud/web/errors.py)
    client = request.client.host if request.client else "unknown"
    signed = await users.authenticate(credentials.username, credentials.password, client)
    if signed is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    start_session(request, signed.session)
    return signed.user


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, users: UsersDep, settings: SettingsDep) -> None:
    """Sign this browser out: the session ends on the server (a copy of the cookie is refused
    from now on) and the cookie is cleared; the account's other sessions go on."""
    session = session_ref(request)
    if session is not None and await users.session_user(session) is not None:
        await users.end_session(session, keep_s=settings.session_max_age_s)
    request.session.clear()


@router.post("/logout/everywhere", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(request: Request, user: CurrentUser, users: UsersDep) -> None:
    """Sign out on every device: every session of this account ends, this one too."""
    await users.end_sessions(user.name, actor=user.name)
    request.session.clear()


@router.get("/me", response_model=User)
async def me(user: CurrentUser) -> User:
    return user
