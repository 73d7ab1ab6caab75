"""POST /dialnexa/webhook: frames HTTP around the webhook service."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.dialnexa import MAX_BODY_BYTES, SIGNATURE_HEADERS
from bot.metrics import Metrics
from bot.webhook import WebhookService


class _TooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def register(app: FastAPI, *, service: WebhookService, metrics: Metrics) -> None:
    """Mount the DialNexa webhook route."""

    @app.post("/dialnexa/webhook", include_in_schema=True)
    async def dialnexa_webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        metrics.webhooks_received.inc()
        try:
            body = await _read_limited(request, MAX_BODY_BYTES)
        except _TooLarge:
            reply = service.reject(413, "too_large", "body is larger than 1 MiB")
        else:
            signature = next(
                (request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers), None
            )
            reply = await service.receive(body, signature)
        metrics.ingest_latency.observe(time.perf_counter() - started)
        return JSONResponse(reply.body, status_code=reply.status)
