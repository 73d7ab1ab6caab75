"""Lookup benchmark: signed `/dialnexa` slash commands over loopback against `countersign serve`.

Bulk-loads `--calls` calls (default 1,000,000), each with its request, card and decision history,
straight into the tables (multi-row `executemany` on SQLite, `COPY` on PostgreSQL; not through
the webhook), starts a real `countersign serve --no-workers` on it with the Slack Web API emulator
standing in for Slack, then sends signed slash commands one at a time and prints p50 and p99 per
lookup kind, measured from sending the POST to reading the whole response. Target: p99 < 50 ms.

    .venv/bin/python bench/lookup.py --calls 20000              # try it small first
    .venv/bin/python bench/lookup.py                             # 1,000,000 calls, both databases
    .venv/bin/python bench/lookup.py --db sqlite --samples 500
    .venv/bin/python bench/lookup.py --reuse /var/tmp/cs-lookup   # load once, measure again later

PostgreSQL: a database named `countersign_bench_lookup` is created (and dropped afterwards,
unless `--reuse`) on the server of `COUNTERSIGN_BENCH_PG_URL`
(default postgresql://postgres@127.0.0.1:5432/test).
Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.emulator import SlackEmulator, serve_app  # noqa: E402
from storage.tables import calls, card_messages, decisions, metadata, requests  # noqa: E402

PG_URL = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_DATABASE = "countersign_bench_lookup"
SIGNING_SECRET = "bench_signing_secret"
USER = "U0BENCH"
COMPANY = "12137771234"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)
CHUNK = 20_000
PENDING = 2_000  # the newest requests wait for a decision
INTENTS = ("refund_request", "invoice_resend", "charge_dispute", "subscription_renewal_failed")


# --- the data ---------------------------------------------------------------------------------


def phone_of(i: int) -> str:
    """A distinct customer number per call: 1 + a 10-digit number spread over the range."""
    return f"1{(4155550000 + i * 7_919) % 10_000_000_000:010d}"


def email_of(i: int) -> str:
    """Three consecutive calls share each address, so an email lookup lists three."""
    return f"customer{i // 3}@example.com"


def invoice_of(i: int) -> str:
    return f"INV-{i:07d}"


def rows_for(i: int, n: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """Call `i` of `n`: the call, its request and (when decided) its decision."""
    at = T0 + i * STEP
    inbound = i % 10 < 7
    remote = phone_of(i)
    stored = f"+{remote}" if i % 2 else remote  # as DialNexa sent it, with or without +
    call_id, request_id = f"call_{i:08d}", f"req_{i:08d}"
    pending = i >= n - PENDING
    status = "pending" if pending else ("rejected" if i % 9 == 0 else "approved")
    intent = INTENTS[i % len(INTENTS)]
    call = {
        "id": call_id,
        "direction": "inbound" if inbound else "outbound",
        "call_type": "phone_call",
        "from_number": stored if inbound else COMPANY,
        "to_number": COMPANY if inbound else stored,
        "status": "completed",
        "agent_id": "agent_billing_en",
        "initiated_at": at - timedelta(minutes=3),
        "duration_seconds": 60 + i % 300,
        "transcript": [
            {"role": "agent", "content": "Thanks for calling, how can I help?"},
            {"role": "user", "content": f"Please look at invoice {invoice_of(i)}."},
        ],
        "summary": f"Caller asked finance about invoice {invoice_of(i)}.",
        "recording_url": f"https://recordings.example/{call_id}.mp3",
        "analysis": {"intent": intent, "invoice_number": invoice_of(i)},
        "unparsed": {},
        "redactions": [],
        "received_at": at,
        "updated_at": at,
    }
    request = {
        "id": request_id,
        "call_id": call_id,
        "intent": intent,
        "resolved_by": f"intent field {intent!r}",
        "status": status,
        "channel": "C0REFUNDS",
        "flags": [],
        "captured": {
            "customer_name": f"Customer {i}",
            "invoice_number": invoice_of(i),
            "amount": str(10 + i % 900),
            "currency": "USD",
        },
        "alerts": [],
        "amount": Decimal(10 + i % 900),
        "currency": "USD",
        "customer_email": email_of(i),
        "customer_phone": remote,
        "invoice_number": invoice_of(i),
        "sensitive": False,
        "required_approvals": 1,
        "version": 1 if pending else 2,
        "decided_by": None if pending else "U0ANA",
        "decided_at": None if pending else at + timedelta(hours=1),
        "write_status": "none" if pending else ("dead" if i % 10_000 == 1 else "done"),
        "write_attempts": 0 if pending else 1,
        "created_at": at,
        "updated_at": at if pending else at + timedelta(hours=1),
    }
    decision = None
    if not pending:
        decision = {
            "request_id": request_id,
            "action": status,
            "user_id": "U0ANA",
            "reason": "Duplicate charge" if status == "rejected" else None,
            "at": at + timedelta(hours=1),
        }
    return call, request, decision


def card_of(i: int) -> dict[str, Any]:
    at = T0 + i * STEP
    return {
        "request_id": f"req_{i:08d}",
        "role": "primary",
        "channel": "C0REFUNDS",
        "ts": f"{1_735_689_600 + i * 30}.000100",
        "posted_at": at,
    }


def chunks(n: int) -> Iterator[range]:
    for start in range(0, n, CHUNK):
        yield range(start, min(start + CHUNK, n))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _pg_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _records(table: Any, rows: list[dict[str, Any]], convert: Any) -> tuple[list[str], list[Any]]:
    names = [c.name for c in table.columns if c.name != "id" or "id" in rows[0]]
    return names, [tuple(convert(row.get(name)) for name in names) for row in rows]


def generate(n: int, part: range) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {
        calls: [],
        requests: [],
        decisions: [],
        card_messages: [],
    }
    for i in part:
        call, request, decision = rows_for(i, n)
        out[calls].append(call)
        out[requests].append(request)
        if decision is not None:
            out[decisions].append(decision)
        out[card_messages].append(card_of(i))
    return out


def load_sqlite(path: Path, n: int) -> None:
    """Create the tables as `storage/tables.py` declares them, mark the migrations applied (so
    `countersign serve` finds nothing to upgrade), and load the rows in chunks."""
    from alembic import command
    from sqlalchemy import create_engine

    from storage.migrate import alembic_config

    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(f"sqlite:///{path}"), "head")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    for part in chunks(n):
        for table, rows in generate(n, part).items():
            if not rows:
                continue
            names, values = _records(table, rows, _sqlite_value)
            marks = ", ".join("?" for _ in names)
            db.executemany(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values
            )
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()


async def load_postgresql(url: str, n: int) -> None:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        for part in chunks(n):
            for table, rows in generate(n, part).items():
                if not rows:
                    continue
                names = [c.name for c in table.columns if c.name != "id" or "id" in rows[0]]
                records = [tuple(_pg_value(row.get(name)) for name in names) for row in rows]
                await conn.copy_records_to_table(table.name, records=records, columns=names)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def reset_pg_database(drop_only: bool = False) -> bool:
    import asyncpg

    try:
        admin = await asyncpg.connect(PG_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]}: {exc}", flush=True)
        return False
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        if not drop_only:
            await admin.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await admin.close()
    return True


def pg_bench_url() -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{PG_DATABASE}"


# --- the requests -----------------------------------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    base = b"v0:" + ts.encode() + b":" + body
    sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    }


def command(text: str) -> bytes:
    return urlencode(
        {
            "token": "legacy",
            "team_id": "T0BENCH",
            "team_domain": "bench",
            "channel_id": "C0FINANCE",
            "channel_name": "finance",
            "user_id": USER,
            "user_name": "bench",
            "command": "/dialnexa",
            "text": text,
            "api_app_id": "A0BENCH",
            "response_url": "http://127.0.0.1:9/unused",
            "trigger_id": "trigger-bench",
        }
    ).encode()


def formatted(phone: str) -> str:
    """`+1 (415) 555-0199`: how a person types a number."""
    return f"+{phone[0]} ({phone[1:4]}) {phone[4:7]}-{phone[7:]}"


def queries(kind: str, n: int, rng: random.Random) -> tuple[str, str]:
    """What to type for one lookup of `kind`, and text its answer must contain."""
    i = rng.randrange(n)
    if kind == "call id":
        return f"call_{i:08d}", f"`call_{i:08d}`"
    if kind == "phone":
        return formatted(phone_of(i)), f"`call_{i:08d}`"
    if kind == "email":
        return email_of(i).upper(), "calls match"
    if kind == "invoice":
        return invoice_of(i), f"`call_{i:08d}`"
    if kind == "many matches":
        return f"+{COMPANY}", "More than 10 calls match"
    if kind == "no match":
        return f"INV-X{i}", "No call matches"
    if kind == "help (floor)":
        return "help", "Look up a DialNexa call"
    return "pending", "waiting for your decision"


# "help" reads nothing: it is the floor of the path (HTTP, signature check, Bolt's dispatch).
KINDS = (
    "help (floor)",
    "call id",
    "phone",
    "email",
    "invoice",
    "many matches",
    "no match",
    "pending",
)


async def measure(base: str, n: int, samples: int, seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for _ in range(20):  # warm up: connections, caches, the user-group lookups
            body = command(queries("call id", n, rng)[0])
            await client.post("/slack/events", content=body, headers=signed(body))
        for kind in KINDS:
            times, wrong = [], 0
            for _ in range(samples):
                text, expect = queries(kind, n, rng)
                body = command(text)
                headers = signed(body)
                start = time.perf_counter()
                resp = await client.post("/slack/events", content=body, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                if resp.status_code != 200 or expect not in resp.text:
                    wrong += 1
            times.sort()
            results[kind] = {
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
                "max_ms": round(times[-1], 1),
                "wrong": wrong,
            }
            print(f"  {kind:<13} {json.dumps(results[kind])}", flush=True)
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"countersign serve exited with {proc.returncode}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("countersign serve did not become healthy")


async def bench(
    name: str, database_url: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    emulator = SlackEmulator(
        token="xoxb-bench",
        usergroups={"S0FINAPPR": [USER], "S0FINLEADS": ["U0LEAD"], "S0COLLECT": ["U0COL"]},
        team_domain="bench",
    )
    async with serve_app(emulator.app) as slack_url:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COUNTERSIGN_"))},
            "PYTHONPATH": str(ROOT),  # the working tree, whatever is installed
            "DATABASE_URL": database_url,
            "DIALNEXA_WEBHOOK_SECRET": "bench_webhook_secret",
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
        }
        serve = "from bot.cli import main; main()"
        cmd = [sys.executable, "-c", serve, "serve", "--no-workers", "--port", str(port)]
        log = work / f"serve-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=out, stderr=out)
        try:
            try:
                await wait_healthy(f"http://127.0.0.1:{port}", proc)
            except SystemExit:
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            print(f"{name}: measuring {args.samples} lookups per kind", flush=True)
            return await measure(f"http://127.0.0.1:{port}", args.calls, args.samples, args.seed)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def pg_loaded(n: int) -> bool:
    """True when the benchmark database exists and holds exactly `n` calls."""
    import asyncpg

    try:
        conn = await asyncpg.connect(pg_bench_url())
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls")) == n
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


async def run_sqlite(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = Path(args.reuse) if args.reuse else work
    path = data / f"lookup-{args.calls}.db"
    if not path.exists():
        started = time.perf_counter()
        await asyncio.to_thread(load_sqlite, path, args.calls)
        print(f"sqlite: loaded {args.calls:,} calls in {time.perf_counter() - started:.0f} s")
    return await bench("sqlite", f"sqlite:///{path}", args, work)


async def run_postgresql(args: argparse.Namespace, work: Path) -> dict[str, Any] | None:
    if not (args.reuse and await pg_loaded(args.calls)):
        if not await reset_pg_database():
            return None
        started = time.perf_counter()
        await load_postgresql(pg_bench_url(), args.calls)
        print(f"postgresql: loaded {args.calls:,} calls in {time.perf_counter() - started:.0f} s")
    try:
        return await bench("postgresql", pg_bench_url(), args, work)
    finally:
        if not args.reuse:
            await reset_pg_database(drop_only=True)


def loadavg() -> str:
    """The machine's load (1, 5, 15 min): shared machines make latency figures noisy."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=1_000_000, help="calls stored before measuring"
    )
    parser.add_argument("--samples", type=int, default=300, help="lookups measured per kind")
    parser.add_argument(
        "--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="keep the data for another run: the SQLite file in DIR, the PostgreSQL database "
        "on the server; a later run with the same --calls measures without loading again",
    )
    args = parser.parse_args()
    if args.calls <= PENDING:
        raise SystemExit(f"--calls must be more than {PENDING}")
    table: dict[str, dict[str, Any]] = {}
    load: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cs-bench-lookup-") as tmp:
        work = Path(tmp)
        if "sqlite" in args.db:
            table["sqlite"] = await run_sqlite(args, work)
            load["sqlite"] = loadavg()
        if "postgresql" in args.db:
            found = await run_postgresql(args, work)
            if found is not None:
                table["postgresql"] = found
                load["postgresql"] = loadavg()
    print(
        f"\n{args.calls:,} stored calls, {args.samples} sequential lookups per kind, "
        f"{os.cpu_count()} CPUs; load average after each run: {load}\n"
    )
    print("| database | lookup | p50 ms | p99 ms | max ms | wrong answers |")
    print("|---|---|---|---|---|---|")
    for database, kinds in table.items():
        for kind, r in kinds.items():
            print(
                f"| {database} | {kind} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                f"{r['wrong']} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
