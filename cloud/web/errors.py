"""The cloud's errors as HTTP answers, in one place, so no route translates them itself.

- The kinds of `CloudError` (cloud/errors.py): not found 404, conflict 409, refused 422, too
  large 413, unavailable 503, each with `{"detail": reason}` (the OpenAPI document's
  `ErrorDetail`; a reason made in both languages, `CloudError.said`, also has `zh` and
  `en`); a site change refused (`SiteEditError`, a `Refused`) gives its reason in Chinese /
  English.
- Errors of a domain with an answer of their own: the telemetry store that cannot answer
  (503); a rules file refused (422); a sign-in limited (429 with Retry-After) or of a disabled
  account (403); a refused claim code (its status by reason, the reason also in
  `X-Claim-Error`, Retry-After when limited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from cloud.access.claims import ClaimLimited, ClaimRefusal, ClaimRefused
from cloud.access.sign_in import SignInLimited
from cloud.access.users import AccountDisabled
from cloud.errors import CloudError, Conflict, NotFound, Refused, TooLarge, Unavailable
from cloud.telemetry.base import StoreError
from contract.site import ConfigFileError

STATUS = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Refused: status.HTTP_422_UNPROCESSABLE_CONTENT,
    TooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}

#: A refused claim code's status, by reason.
CLAIM_STATUS = {
    ClaimRefusal.MALFORMED: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ClaimRefusal.UNKNOWN: status.HTTP_403_FORBIDDEN,
    ClaimRefusal.EXPIRED: status.HTTP_410_GONE,
    ClaimRefusal.USED: status.HTTP_410_GONE,
    ClaimRefusal.REPLACED: status.HTTP_410_GONE,
    ClaimRefusal.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
}


def http_status(exc: CloudError) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


def _detail(detail: str, code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def _cloud_error(exc: CloudError) -> JSONResponse:
    body = {"detail": str(exc)}
    if exc.zh and exc.en:  # the reason in each language, for a page to show the user's
        body |= {"zh": exc.zh, "en": exc.en}
    return JSONResponse(body, status_code=http_status(exc))


def _store_error(exc: StoreError) -> JSONResponse:
    return _detail(str(exc), status.HTTP_503_SERVICE_UNAVAILABLE)


def _rules_refused(exc: ConfigFileError) -> JSONResponse:
    return _detail(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)


def _sign_in_limited(exc: SignInLimited) -> JSONResponse:
    return _detail(
        exc.message,
        status.HTTP_429_TOO_MANY_REQUESTS,
        {"Retry-After": str(exc.retry_after_s)},
    )


def _account_disabled(exc: AccountDisabled) -> JSONResponse:
    return _detail("this account is disabled; ask an administrator", status.HTTP_403_FORBIDDEN)


def _claim_refused(exc: ClaimRefused) -> JSONResponse:
    headers = {"X-Claim-Error": exc.reason.value}
    if isinstance(exc, ClaimLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(
        {"detail": exc.message, "reason": exc.reason.value},
        status_code=CLAIM_STATUS[exc.reason],
        headers=headers,
    )


E = TypeVar("E", bound=Exception)


def _handler(
    kind: type[E], answer: Callable[[E], JSONResponse]
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, kind)
        return answer(exc)

    return handle


def install(app: FastAPI) -> None:
    app.add_exception_handler(CloudError, _handler(CloudError, _cloud_error))
    app.add_exception_handler(StoreError, _handler(StoreError, _store_error))
    app.add_exception_handler(ConfigFileError, _handler(ConfigFileError, _rules_refused))
    app.add_exception_handler(SignInLimited, _handler(SignInLimited, _sign_in_limited))
    app.add_exception_handler(AccountDisabled, _handler(AccountDisabled, _account_disabled))
    app.add_exception_handler(ClaimRefused, _handler(ClaimRefused, _claim_refused))
