"""Click benchmark: signed Approve clicks against a real `countersign serve`, Slack emulated.

Prints p50/p99 from a click's POST to its HTTP response at 1, 10 and 50 concurrent clicks on
distinct requests, and the delay from the click until the card's `chat.update` reaches the
Slack emulator. A bare FastAPI endpoint that verifies the Slack signature and parses the form
is measured in the same run, so the figures can be read as a ratio on a noisy machine.

    .venv/bin/python bench/ack.py                     # SQLite
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select, text, update

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
            update(outbox).where(outbox.c.kind.in_(["post_card", "alert"])).values(status="done")
        )
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


async def clicks(
    base: str, targets: list[tuple[CardRef, str]], conc: int, slack: SlackEmulator | None
) -> dict[str, Any]:
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=conc)) as c:
        queue = list(targets)

        async def worker(k: int) -> None:
            while queue:
                ref, ts = queue.pop()
                body = click_body(APPROVERS[k % len(APPROVERS)], ref, "C0REFUNDS", ts)
                start = time.perf_counter()
                sent_at[ts] = time.time()
                r = await c.post("/slack/events", content=body, headers=signed(body))
                latencies.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.status_code

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(conc)))
        elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "clicks": len(latencies),
        "clicks_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(pct(latencies, 0.99), 1),
    }
    if slack is not None:
        deadline = time.time() + 60
        while time.time() < deadline:
            updated = {c.params.get("ts"): c.at for c in slack.calls("chat.update")}
            if all(ts in updated for ts in sent_at):
                break
            await asyncio.sleep(0.05)
        delays = [(updated[ts] - sent_at[ts]) * 1000 for ts in sent_at if ts in updated]
        result["update_p50_ms"] = round(statistics.median(delays), 1) if delays else None
        result["update_p99_ms"] = round(pct(delays, 0.99), 1) if delays else None
        result["updates_seen"] = len(delays)
    return result


WRK_LUA = r"""
local reqs, n = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local ts, sig, body = line:match("^(%d+) (%S+) (.*)$")
    reqs[#reqs + 1] = wrk.format("POST", "/slack/events", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = ts, ["X-Slack-Signature"] = sig}, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests":%d,"seconds":%.3f,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
"""


async def clicks_wrk(
    base: str,
    targets: list[tuple[CardRef, str]],
    conc: int,
    slack: SlackEmulator | None,
    work: Path,
) -> dict[str, Any]:
    """The same clicks driven by wrk (one thread, `conc` connections), one pass over targets."""
    script, data = work / "clicks.lua", work / f"clicks_{conc}.txt"
    script.write_text(WRK_LUA)
    sent_at = time.time()
    with data.open("w") as f:
        for k, (ref, ts) in enumerate(targets):
            body = click_body(APPROVERS[k % len(APPROVERS)], ref, "C0REFUNDS", ts)
            h = signed(body)
            f.write(f"{h['x-slack-request-timestamp']} {h['x-slack-signature']} {body.decode()}\n")
    # Each connection sends in turn through the list; stop once every click has been sent.
    seconds = max(2, len(targets) // 40)
    out = await asyncio.to_thread(
        subprocess.run,
        [
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
            "--",
            str(data),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    result: dict[str, Any] = {
        "clicks": r["requests"],
        "clicks_per_s": round(r["requests"] / r["seconds"]),
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
    }
    if slack is not None:
        wanted = {ts for _, ts in targets}
        deadline = time.time() + 60
        while time.time() < deadline:
            updated = {c.params.get("ts"): c.at for c in slack.calls("chat.update")}
            if wanted <= set(updated):
                break
            await asyncio.sleep(0.1)
        result["all_updated_after_s"] = round(
            max(updated.get(t, deadline) for t in wanted) - sent_at, 2
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
            base = f"http://127.0.0.1:{port}"
            await wait_healthy(base, bare)
            for conc in args.concurrency:
                fake = [
                    (CardRef(request_id=f"req_{i}", version=1), f"{i}.0")
                    for i in range(args.clicks)
                ]
                r = await (
                    clicks_wrk(base, fake, conc, None, work)
                    if args.wrk
                    else clicks(base, fake, conc, None)
                )
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
        if database_url.startswith("postgresql"):
            async with db.writer.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            subprocess.run(
                [str(Path(sys.executable).with_name("countersign")), "db", "upgrade"],
                env=env,
                cwd=work,
                check=True,
                capture_output=True,
            )
        port = free_port()
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("countersign")), "serve", "--port", str(port)],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_healthy(base, proc)
            for conc in args.concurrency:
                targets = await seed(base, db, slack_api, args.clicks, f"c{conc}")
                r = await (
                    clicks_wrk(base, targets, conc, emulator, work)
                    if args.wrk
                    else clicks(base, targets, conc, emulator)
                )
                rows_out.append({"target": "countersign", "conc": conc, **r})
                print(json.dumps(rows_out[-1]), flush=True)
        finally:
            proc.terminate()
            proc.wait()
            await db.dispose()
    print("\n| target | concurrent clicks | clicks/s | p50 ms | p99 ms | update p50 | update p99 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows_out:
        print(
            f"| {r['target']} | {r['conc']} | {r['clicks_per_s']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r.get('update_p50_ms', '-')} | {r.get('update_p99_ms', '-')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clicks", type=int, default=300, help="clicks per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--database", default=None, help="postgresql://… (default: SQLite)")
    parser.add_argument(
        "--wrk",
        action="store_true",
        help="drive the clicks with wrk instead of this process's HTTP client",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
