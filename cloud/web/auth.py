"""Sign-in and sign-out (a signed, expiring session cookie)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from cloud.users import SignInLimited, User
from cloud.web.deps import CloudDep, CurrentUser

router = APIRouter(prefix="/api", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", response_model=User)
async def login(credentials: Credentials, request: Request, cloud: CloudDep) -> User:
    client = request.client.host if request.client else "unknown"
    try:
        user = await cloud.users.authenticate(credentials.username, credentials.password, client)
    except SignInLimited:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many failed sign-ins; wait five minutes"
        ) from None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    request.session.clear()
    request.session["user"] = user.name
    return user


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request) -> None:
    request.session.clear()


@router.get("/me", response_model=User)
async def me(user: CurrentUser) -> User:
    return user
