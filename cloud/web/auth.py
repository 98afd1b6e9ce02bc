"""Sign-in and sign-out (a signed, expiring session cookie; signing out ends the session on
the server too, so a copy of the cookie is refused afterwards)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from cloud.access.sign_in import SignInLimited
from cloud.access.users import AccountDisabled, User
from cloud.web.deps import CloudDep, CurrentUser, session_ref, start_session

router = APIRouter(prefix="/api", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", response_model=User)
async def login(credentials: Credentials, request: Request, cloud: CloudDep) -> User:
    client = request.client.host if request.client else "unknown"
    try:
        signed = await cloud.users.authenticate(credentials.username, credentials.password, client)
    except SignInLimited as limited:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            limited.message,
            headers={"Retry-After": str(limited.retry_after_s)},
        ) from None
    except AccountDisabled:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this account is disabled; ask an administrator"
        ) from None
    if signed is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    start_session(request, signed.session)
    return signed.user


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, cloud: CloudDep) -> None:
    """Sign this browser out: the session ends on the server (a copy of the cookie is refused
    from now on) and the cookie is cleared; the account's other sessions go on."""
    session = session_ref(request)
    if session is not None and await cloud.users.session_user(session) is not None:
        await cloud.users.end_session(session, keep_s=cloud.settings.session_max_age_s)
    request.session.clear()


@router.post("/logout/everywhere", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(request: Request, user: CurrentUser, cloud: CloudDep) -> None:
    """Sign out on every device: every session of this account ends, this one too."""
    await cloud.users.end_sessions(user.name, actor=user.name)
    request.session.clear()


@router.get("/me", response_model=User)
async def me(user: CurrentUser) -> User:
    return user
