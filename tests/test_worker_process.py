"""`countersign worker`: a separate process that posts what the web process queued."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bot.app import Deps, create_app
from bot.emulator import SlackEmulator, serve_app
from bot.metrics import Metrics
from bot.settings import Settings, async_database_url
from storage.db import Database
from storage.migrate import upgrade
from tests.support.calls import REFUND_CALL, WEBHOOK_SECRET, encode, signed_headers
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET, USERGROUPS
from tests.test_cli import clean_env

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


async def test_a_worker_process_posts_cards_queued_by_the_web_process(tmp_path, policy):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    await asyncio.to_thread(upgrade, url)
    slack = SlackEmulator(token=BOT_TOKEN, usergroups=USERGROUPS)
    async with serve_app(slack.app) as slack_url:
        web_settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            dialnexa_webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
            database_url=url,
        )
        db = Database(async_database_url(url))
        app = create_app(
            Deps(settings=web_settings, db=db, policy=policy, metrics=Metrics()), workers=False
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cs") as http:
                body = encode(REFUND_CALL)
                resp = await http.post(
                    "/dialnexa/webhook", content=body, headers=signed_headers(body)
                )
                assert resp.status_code == 202
        await db.dispose()
        env = clean_env(
            DATABASE_URL=url,
            DIALNEXA_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=f"{slack_url}/api/",
        )
        proc = subprocess.Popen(  # noqa: ASYNC220 - a real worker process is the point
            [COUNTERSIGN, "worker"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        posted = None
        try:
            posted = await slack.wait_for(lambda: slack.messages("C0REFUNDS"), timeout=20)
        except TimeoutError:
            pass
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(proc.communicate, timeout=20)
    assert posted, output
    assert proc.returncode == 0, output
    assert len(slack.messages("C0REFUNDS")) == 1
