"""What the API does with a bad request, before any broker is touched.

- a body over the cap (``QUEUE_EXP_MAX_BODY_BYTES``, default 1 MiB) -> 413
- a JSON body that is not UTF-8 -> 400 saying so
- a body that is not JSON (wrong or missing ``Content-Type``) -> 415
- a body that does not fit the model -> 422 naming each field, without echoing
  the input back (it may be huge)

and with a broker's answer: unreachable -> 503 naming the address and how to
start it; a message too large for Kafka -> 413; anything else refused -> 502.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from kafka.errors import MessageSizeTooLargeError
from pika.exceptions import NackError
from pika.exceptions import UnroutableError

from queue_exp.errors import BrokerUnavailable

BODY_METHODS = {"POST", "PUT", "PATCH"}


def _error(status: int, detail: str) -> tuple[int, bytes]:
    return status, json.dumps({"detail": detail}).encode()


class BodyGuard:
    """ASGI middleware: reads each request body (at most ``max_body_bytes``), refuses
    what is too large or not UTF-8, and hands the rest to the app unchanged."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        problem = self._check_length_header(headers.get(b"content-length"))
        body = bytearray()
        while problem is None:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                problem = self._too_large()
            elif not message.get("more_body", False):
                break
        if problem is None and b"json" in headers.get(b"content-type", b""):
            try:
                bytes(body).decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = _error(400, f"the body is not valid UTF-8 (byte {exc.start}); "
                                      "JSON must be sent as UTF-8")
        if problem is not None:
            await self._respond(send, *problem)
            return

        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> tuple[int, bytes]:
        return _error(413, f"the body is larger than {self.max_body_bytes} bytes "
                           "(QUEUE_EXP_MAX_BODY_BYTES)")

    def _check_length_header(self, raw: bytes | None) -> tuple[int, bytes] | None:
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            return _error(400, "the Content-Length header is not a number")
        return self._too_large() if length > self.max_body_bytes else None

    @staticmethod
    async def _respond(send: Any, status: int, body: bytes) -> None:
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _field(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming every wrong field (415 if the body was not sent as JSON at all)."""
    content_type = request.headers.get("content-type", "")
    if request.method in BODY_METHODS and "json" not in content_type:
        shown = content_type or "none"
        return JSONResponse(status_code=415, content={
            "detail": f"send the body as JSON with the header Content-Type: application/json "
                      f"(got Content-Type: {shown})"})
    errors = []
    for error in exc.errors():
        msg = error["msg"]
        if error["type"] == "json_invalid":
            msg = f"invalid JSON: {error.get('ctx', {}).get('error', msg)}"
        errors.append({"loc": list(error["loc"]), "msg": msg, "type": error["type"]})
    summary = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": errors, "message": summary})


async def broker_unavailable(_request: Request, exc: BrokerUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def broker_refused(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, MessageSizeTooLargeError):
        return JSONResponse(status_code=413, content={"detail": f"Kafka refused: {exc}"})
    if isinstance(exc, UnroutableError):
        return JSONResponse(status_code=422, content={"detail": "RabbitMQ could not route it"})
    return JSONResponse(status_code=502, content={"detail": f"broker refused: {exc!r}"})


def install(app: FastAPI, max_body_bytes: int) -> None:
    """Add the body guard and every error handler above to ``app``."""
    app.add_middleware(BodyGuard, max_body_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    for refused in (KafkaError, NackError, UnroutableError):
        app.add_exception_handler(refused, broker_refused)
