"""The admins manage the duty-room accounts: list, create, change role, reset a password,
disable or enable, sign an account out everywhere. Every change is audited with who made it;
the last active admin can be neither disabled nor demoted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.users import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    Account,
    Role,
)
from cloud.web.deps import AccountAdmin, UsersDep

router = APIRouter(prefix="/api/users", tags=["users"])

#: Letters (any script), digits, dot, dash and underscore; what a sign-in form can carry.
NAME_PATTERN = r"^[\w.-]+$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
PathName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description=f"at least {MIN_PASSWORD} characters",
    ),
]


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Role
    password: Password


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Password


@router.get("", response_model=list[Account])
async def list_accounts(users: UsersDep, admin: AccountAdmin) -> list[Account]:
    """Every account, by name (no password hashes)."""
    return await users.accounts()


@router.post("", response_model=Account, status_code=status.HTTP_201_CREATED)
async def create_account(body: NewAccount, users: UsersDep, admin: AccountAdmin) -> Account:
    return await users.create(body.name, body.role, body.password, actor=admin.name)


@router.put("/{name}/role", response_model=Account)
async def change_role(
    name: PathName, body: RoleChange, users: UsersDep, admin: AccountAdmin
) -> Account:
    """Takes effect at the account's next request (its sessions stay)."""
    return await users.set_role(name, body.role, actor=admin.name)


@router.put("/{name}/password", response_model=Account)
async def reset_password(
    name: PathName, body: PasswordReset, request: Request, users: UsersDep, admin: AccountAdmin
) -> Account:
    """A new password; every session of the account ends (the admin's own one goes on if
    they reset their own password)."""
    account = await users.set_password(name, body.password, actor=admin.name)
    if name == admin.name:
        request.session["key"] = await users.session_key(name)
    return account


@router.post("/{name}/disable", response_model=Account)
async def disable_account(name: PathName, users: UsersDep, admin: AccountAdmin) -> Account:
    """The account's sessions end at once and it cannot sign in until enabled again."""
    return await users.set_disabled(name, True, actor=admin.name)


@router.post("/{name}/enable", response_model=Account)
async def enable_account(name: PathName, users: UsersDep, admin: AccountAdmin) -> Account:
    return await users.set_disabled(name, False, actor=admin.name)


@router.delete("/{name}/sessions", response_model=Account)
async def end_sessions(name: PathName, users: UsersDep, admin: AccountAdmin) -> Account:
    """Sign the account out everywhere (e.g. a PC left signed in, a lost phone)."""
    return await users.end_sessions(name, actor=admin.name)
