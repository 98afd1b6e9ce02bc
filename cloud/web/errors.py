"""The cloud's errors as HTTP answers, in one place: not found 404, conflict 409, refused 422,
each with `{"detail": reason}` (the OpenAPI document's `ErrorDetail`)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from cloud.errors import CloudError, Conflict, NotFound, Refused

STATUS = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Refused: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def http_status(exc: CloudError) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


def install(app: FastAPI) -> None:
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CloudError)
        return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))

    app.add_exception_handler(CloudError, answer)
