"""Click benchmark: signed Approve clicks against a real `countersign serve`, Slack emulated.

Prints p50/p99 from a click's POST to its HTTP response at 1, 10 and 50 concurrent clicks on
distinct requests, and the delay from the click until the card's `chat.update` reaches the
Slack emulator. A bare FastAPI endpoint that verifies the Slack signature and parses the form
is measured in the same run, so the figures can be read as a ratio on a noisy machine.

    .venv/bin/python bench/ack.py                     # SQLite
    .venv/bin/python bench/ack.py --mode paced --rate 20 --clicks 400 --concurrency 10
    .venv/bin/python bench/ack.py --database postgresql://postgres@127.0.0.1:5432/test

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bot.emulator import SlackEmulator, serve_app
from bot.settings import async_database_url
from bot.slack_ids import CardRef
from storage.db import Database
from storage.queries import insert_ignore
from storage.tables import card_messages, outbox, requests

WEBHOOK_SECRET = "bench_webhook_secret"
SIGNING_SECRET = "bench_signing_secret"
TOKEN = "xoxb-bench"
APPROVERS = [f"U0APPR{i:02d}" for i in range(60)]

BARE_APP = (
    textwrap.dedent(
        """
    import hashlib, hmac, json, time
    from urllib.parse import parse_qs
    from fastapi import FastAPI, Request, Response
    app = FastAPI()
    SECRET = %r
    @app.post("/slack/events")
    async def events(request: Request):
        body = await request.body()
        ts = request.headers["x-slack-request-timestamp"]
        if abs(time.time() - int(ts)) > 300:
            return Response(status_code=401)
        base = b"v0:" + ts.encode() + b":" + body
        good = "v0=" + hmac.new(SECRET, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, request.headers["x-slack-signature"]):
            return Response(status_code=401)
        json.loads(parse_qs(body.decode())["payload"][0])
        return Response(status_code=200)
    @app.get("/healthz")
    async def health():
        return {"status": "ok"}
    """
    )
    % SIGNING_SECRET.encode()
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": "v0=" + sig.hexdigest(),
    }


def click_body(user: str, ref: CardRef, channel: str, ts: str) -> bytes:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "bench"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy",
        "trigger_id": f"trigger-{ref.request_id}",
        "channel": {"id": channel, "name": "finance"},
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "message": {"ts": ts, "type": "message"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [
            {"action_id": "approve", "block_id": "actions", "type": "button", "value": ref.encode()}
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def webhook(n: int, tag: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event_type": "call_ended",
            "payload": {
                "call": {
                    "id": f"call_ack_{tag}_{n}",
                    "status": "completed",
                    "from_number": "14155550123",
                    "summary": "Refund request for order 1182.",
                    "post_call_analysis": {
                        "intent": "refund_request",
                        "amount": "120.00",
                        "currency": "USD",
                        "invoice_number": f"INV-{n}",
                    },
                }
            },
        }
    ).encode()
    sig = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"content-type": "application/json", "x-dialnexa-signature": sig}


async def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(150):
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                if (await c.get(f"{base}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("server did not become healthy")


async def seed(
    base: str, db: Database, slack_api: str, count: int, tag: str
) -> list[tuple[CardRef, str]]:
    """Create `count` pending requests through the webhook and give each a posted card."""
    async with httpx.AsyncClient(base_url=base) as c:
        sem = asyncio.Semaphore(16)

        async def one(n: int) -> None:
            body, headers = webhook(n, tag)
            async with sem:
                r = await c.post("/dialnexa/webhook", content=body, headers=headers)
                assert r.status_code == 202, r.text

        await asyncio.gather(*(one(n) for n in range(count)))
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(requests.c.id, requests.c.version).where(
                    requests.c.call_id.like(f"call_ack_{tag}_%")
                )
            )
        ).all()
    # Cards are posted here rather than by the worker, whose per-channel limit (1/s) would
    # make seeding take minutes; the clicks then find a real message to update.
    seeded = []
    async with httpx.AsyncClient() as c:
        for r in rows:
            resp = await c.post(
                f"{slack_api}chat.postMessage",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"channel": "C0REFUNDS", "text": "card", "blocks": []},
            )
            seeded.append((CardRef(request_id=r.id, version=r.version), resp.json()["ts"]))
    now = datetime.now(UTC)
    for attempt in range(5):
        try:
            async with db.transaction() as tx:
                for ref, ts in seeded:
                    # The service's own worker may have posted some cards already; keep those.
                    await insert_ignore(
                        tx.conn,
                        card_messages,
                        {
                            "request_id": ref.request_id,
                            "role": "primary",
                            "channel": "C0REFUNDS",
                            "ts": ts,
                            "posted_at": now,
                        },
                        key=("request_id", "role"),
                    )
                await tx.conn.execute(
                    update(outbox)
                    .where(outbox.c.kind.in_(["post_card", "alert"]))
                    .values(status="done")
                )
            break
        except DBAPIError as exc:
            # PostgreSQL: the service's worker, finishing a post, can lock the same rows in the
            # other order; it wins, and this seeding starts again.
            if "deadlock" not in str(exc) or attempt == 4:
                raise
    ids = [ref.request_id for ref, _ in seeded]
    async with db.read() as conn:
        posted = (
            await conn.execute(
                select(card_messages.c.request_id, card_messages.c.ts).where(
                    card_messages.c.request_id.in_(ids)
                )
            )
        ).all()
    versions = {ref.request_id: ref.version for ref, _ in seeded}
    seeded = [
        (CardRef(request_id=r.request_id, version=versions[r.request_id]), r.ts) for r in posted
    ]
    return seeded


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def clicks(
    port: int,
    targets: list[tuple[CardRef, str]],
    conc: int,
    mode: str,
    work: Path,
    *,
    rate: float = 20.0,
    slack: SlackEmulator | None = None,
    pid: int | None = None,
    idle: Callable[[], Awaitable[bool]] | None = None,
) -> dict[str, Any]:
    """Each target clicked once by bench/loadgen.py; latency, server CPU and card updates."""
    data = work / f"clicks_{conc}.jsonl"
    with data.open("w") as f:
        for k, (ref, ts) in enumerate(targets):
            body = click_body(APPROVERS[k % len(APPROVERS)], ref, "C0REFUNDS", ts)
            line = {"path": "/slack/events", "headers": signed(body), "body": body.decode()}
            f.write(json.dumps(line) + "\n")
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(Path(__file__).with_name("loadgen.py")),
            str(data),
            "--port",
            str(port),
            "--conc",
            str(conc),
            "--mode",
            mode,
            "--rate",
            str(rate),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu_clicks = cpu_seconds(pid) if pid else 0.0
    run = json.loads(out.stdout)
    sent = run["results"]
    bad = [status for _, _, status in sent if status != 200]
    assert not bad, f"{len(bad)} clicks answered {bad[0]}"
    latencies = [ms for _, ms, _ in sent]
    result: dict[str, Any] = {
        "clicks": len(sent),
        "clicks_per_s": round(len(sent) / run["seconds"]),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(pct(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }
    if pid:
        result["cpu_ms_per_click_to_ack"] = round((cpu_clicks - cpu_before) * 1000 / len(sent), 2)
    if slack is not None:
        sent_at = {ts: started for (_, ts), (started, _, _) in zip(targets, sent, strict=True)}
        deadline = time.time() + 120
        while True:
            updated: dict[str, float] = {}
            for call in slack.calls("chat.update"):
                updated.setdefault(str(call.params.get("ts")), call.at)
            if set(sent_at) <= set(updated) or time.time() > deadline:
                break
            await asyncio.sleep(0.05)
        delays = [(updated[ts] - sent_at[ts]) * 1000 for ts in sent_at if ts in updated]
        result["update_p50_ms"] = round(statistics.median(delays), 1) if delays else None
        result["update_p99_ms"] = round(pct(delays, 0.99), 1) if delays else None
        result["updates_missing"] = len(sent_at) - len(delays)
        if pid and idle is not None:
            for _ in range(2400):  # the second card update (write done) may still be queued
                if await idle():
                    break
                await asyncio.sleep(0.05)
            result["cpu_ms_per_click_all"] = round(
                (cpu_seconds(pid) - cpu_before) * 1000 / len(sent), 2
            )
    return result


async def run(args: argparse.Namespace) -> None:
    emulator = SlackEmulator(token=TOKEN, usergroups={"S0FINAPPR": APPROVERS})
    work = Path(tempfile.mkdtemp(prefix="cs-ack-"))
    rows_out: list[dict[str, Any]] = []
    async with serve_app(emulator.app) as slack_url:
        slack_api = f"{slack_url}/api/"
        # Bare endpoint first, for the ratio.
        (work / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_healthy(f"http://127.0.0.1:{port}", bare)
            for conc in args.concurrency:
                fake = [
                    (CardRef(request_id=f"req_{i}", version=1), f"{i}.0")
                    for i in range(args.clicks)
                ]
                r = await clicks(port, fake, conc, args.mode, work, rate=args.rate, pid=bare.pid)
                rows_out.append({"target": "bare", "conc": conc, **r})
                print(json.dumps(rows_out[-1]), flush=True)
        finally:
            bare.terminate()
            bare.wait()

        database_url = args.database or f"sqlite:///{work / 'ack.db'}"
        env = {
            **os.environ,
            "DIALNEXA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api,
            "DATABASE_URL": database_url,
        }
        db = Database(async_database_url(database_url))
        countersign = str(Path(sys.executable).with_name("countersign"))
        if database_url.startswith("postgresql"):
            async with db.writer.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            subprocess.run(
                [countersign, "db", "upgrade"], env=env, cwd=work, check=True, capture_output=True
            )
        port = free_port()
        proc = subprocess.Popen(
            [countersign, "serve", "--port", str(port)],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def idle() -> bool:
            async with db.read() as conn:
                due = await conn.execute(
                    select(outbox.c.id).where(outbox.c.status == "pending").limit(1)
                )
                return due.first() is None

        try:
            await wait_healthy(f"http://127.0.0.1:{port}", proc)
            for conc in args.concurrency:
                base = f"http://127.0.0.1:{port}"
                targets = await seed(base, db, slack_api, args.clicks, f"c{conc}")
                r = await clicks(
                    port,
                    targets,
                    conc,
                    args.mode,
                    work,
                    rate=args.rate,
                    slack=emulator,
                    pid=proc.pid,
                    idle=idle,
                )
                rows_out.append({"target": "countersign", "conc": conc, **r})
                print(json.dumps(rows_out[-1]), flush=True)
        finally:
            proc.terminate()
            # In a thread: the Slack emulator runs on this loop and must keep answering while
            # the server finishes what it has in hand.
            await asyncio.to_thread(proc.wait)
            await db.dispose()
    print(
        "\n| target | concurrent clicks | clicks/s | p50 ms | p99 ms | CPU ms/click "
        "| update p50 ms | update p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows_out:
        cpu = r.get("cpu_ms_per_click_all", r.get("cpu_ms_per_click_to_ack"))
        print(
            f"| {r['target']} | {r['conc']} | {r['clicks_per_s']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {cpu} | {r.get('update_p50_ms', '-')} | "
            f"{r.get('update_p99_ms', '-')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clicks", type=int, default=1000, help="clicks per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--database", default=None, help="postgresql://… (default: SQLite)")
    parser.add_argument(
        "--mode",
        choices=["closed", "burst", "paced"],
        default="closed",
        help="closed: each connection clicks again once answered; burst: waves of N at once;\n"
        "paced: --rate clicks a second over N connections (the card-update delay at a steady load)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="clicks a second (paced)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
