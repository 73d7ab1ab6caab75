"""GET /healthz and GET /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.metrics import Metrics, refresh_outbox_gauge
from storage.db import Database


def register(app: FastAPI, *, db: Database, metrics: Metrics) -> None:
    """Mount the health and metrics routes."""

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if await db.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "error": "database"}, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        await refresh_outbox_gauge(metrics, db)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
