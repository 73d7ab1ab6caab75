"""Ingest benchmark: signed DialNexa webhooks over loopback HTTP against a real `countersign serve`.

Prints, per database and concurrency: sustained accepted webhooks/s, p50/p99 latency, the server's
peak RSS, and checks afterwards that every unique call id left exactly one call, request and card
row. A bare FastAPI endpoint that only checks the HMAC and parses JSON runs first in the same
session, so the figures can be read as a ratio on a noisy shared machine.

    .venv/bin/python bench/ingest.py                       # SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/ingest.py --duration 10 --concurrency 1 8 32 64

Needs `wrk` (Debian: apt-get install wrk). Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from sqlalchemy import text

SECRET = "bench_only_secret"
ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

LUA = r"""
local reqs, n = {}, 0
c202, c200, cother = 0, 0, 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1] .. "." .. tid) do
    local sig, body = line:match("^(%x+) (.*)$")
    reqs[#reqs + 1] = wrk.format("POST", "/dialnexa/webhook",
      {["Content-Type"] = "application/json", ["X-DialNexa-Signature"] = sig}, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function response(status, headers, body)
  if status == 202 then c202 = c202 + 1
  elseif status == 200 then c200 = c200 + 1
  else cother = cother + 1 end
end
function done(summary, latency, requests)
  local a, d, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("c202"); d = d + t:get("c200"); o = o + t:get("cother")
  end
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"p50_ms":%.2f,"p99_ms":%.2f,"accepted":%d,' ..
    '"duplicate":%d,"other":%d,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, a, d, o,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout))
end
"""

BARE_APP = (
    textwrap.dedent(
        """
    import hashlib, hmac, json
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    app = FastAPI()
    SECRET = %r
    @app.post("/dialnexa/webhook")
    async def hook(request: Request):
        body = await request.body()
        sig = request.headers.get("x-dialnexa-signature", "")
        good = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, sig):
            return JSONResponse({"status": "rejected"}, status_code=401)
        data = json.loads(body)
        return JSONResponse({"status": "accepted", "call_id": data["payload"]["call"]["id"]},
                            status_code=202)
    @app.get("/healthz")
    async def health():
        return {"status": "ok"}
    """
    )
    % SECRET.encode()
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def payload(call_id: str, n: int) -> bytes:
    """A ~1 KB finished-call webhook in the first documented shape."""
    body = {
        "event_type": "call_ended",
        "payload": {
            "call": {
                "id": call_id,
                "direction": "outbound",
                "type": "phone_call",
                "from_number": "918035550142",
                "to_number": f"91987654{n % 10000:04d}",
                "status": "completed",
                "agent_id": "agent_2g7Xy3tY53gRlp",
                "initiated_at": "2026-09-14T09:12:03.417Z",
                "duration": 142,
                "transcript": (
                    "Agent: Hi Priya, calling about your refund request for order 1182.\n"
                    "User: Yes, I want the 4,500 rupee refund approved today, please.\n"
                    "Agent: I have noted it and finance will review it shortly.\n"
                    "User: Thank you, my invoice number is 1182 and I paid last week."
                ),
                "summary": "Customer requested approval of a Rs 4,500 refund for order 1182.",
                "recording_url": f"https://recordings.example/{call_id}.mp3?sig=EXAMPLE",
                "hangup_reason": "agent_hangup",
                "post_call_analysis": {
                    "intent": "refund_request",
                    "amount": "4,500",
                    "currency": "INR",
                    "invoice_number": "1182",
                    "customer_name": "Priya",
                    "follow_up_deadline": "2026-09-20",
                },
            }
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def write_requests(path: Path, *, tag: str, threads: int, per_thread: int, dup_every: int) -> int:
    """One file per wrk thread; every `dup_every`-th line repeats an earlier call id."""
    unique = 0
    for t in range(1, threads + 1):
        with open(f"{path}.{t}", "w") as f:
            line = ""
            for i in range(per_thread):
                if not (dup_every and i and i % dup_every == 0):
                    # A redelivery repeats the previous line byte for byte, as DialNexa would.
                    body = payload(f"call_{tag}_{t}_{i}", i)
                    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                    line = f"{sig} {body.decode()}\n"
                    unique += 1
                f.write(line)
    return unique


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def run_wrk(base: str, script: Path, data: Path, *, conns: int, seconds: int) -> dict[str, float]:
    threads = min(2, conns)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(conns),
            "-d",
            f"{seconds}s",
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
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def reset_pg(url: str) -> bool:
    try:
        import asyncio

        import asyncpg  # type: ignore[import-untyped]

        async def _drop() -> None:
            conn = await asyncpg.connect(url)
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            await conn.close()

        asyncio.run(_drop())
        return True
    except Exception as exc:  # the PostgreSQL leg is optional
        print(f"PostgreSQL not reachable ({exc}); skipping it")
        return False


def verify_rows(database_url: str) -> dict[str, int]:
    """Counts that prove exactly-once: calls, requests and queued cards must all be equal."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.settings import async_database_url

    async def _count() -> dict[str, int]:
        engine = create_async_engine(async_database_url(database_url))
        async with engine.connect() as conn:
            result = {
                name: int((await conn.execute(text(sql))).scalar_one())
                for name, sql in {
                    "calls": "SELECT count(*) FROM calls",
                    "requests": "SELECT count(*) FROM requests",
                    "cards": "SELECT count(*) FROM outbox WHERE kind = 'post_card'",
                    "distinct_calls": "SELECT count(DISTINCT call_id) FROM requests",
                }.items()
            }
        await engine.dispose()
        return result

    return asyncio.run(_count())


def bench_target(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    work: Path,
    args: argparse.Namespace,
    database_url: str | None,
) -> list[dict[str, object]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([*cmd, "--port", str(port)], env, work)
    results = []
    try:
        wait_healthy(base, proc)
        script = work / "bench.lua"
        script.write_text(LUA)
        for conns in args.concurrency:
            data = work / f"req_{name}_{conns}"
            per_thread = args.rate_cap * args.duration  # more than a run can send
            unique = write_requests(
                data,
                tag=f"{name}{conns}",
                threads=min(2, conns),
                per_thread=per_thread,
                dup_every=args.dup_every,
            )
            r = run_wrk(base, script, data, conns=conns, seconds=args.duration)
            row: dict[str, object] = {
                "target": name,
                "conns": conns,
                "req_per_s": round(r["requests"] / r["seconds"]),
                "accepted_per_s": round(r["accepted"] / r["seconds"]),
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "accepted": int(r["accepted"]),
                "duplicate": int(r["duplicate"]),
                "other": int(r["other"]) + int(r["errors"]),
                "unique_available": unique,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        rss = peak_rss_mb(proc.pid)
        for row in results:
            row["peak_rss_mb"] = round(rss, 1)
        if database_url is not None:
            counts = verify_rows(database_url)
            accepted = sum(int(str(r["accepted"])) for r in results)
            in_flight = sum(int(str(r["conns"])) for r in results)
            # wrk stops with requests in flight: those may commit without their 202 being read.
            ok = (
                counts["calls"] == counts["requests"] == counts["cards"] == counts["distinct_calls"]
            ) and 0 <= counts["calls"] - accepted <= in_flight
            print(
                f"{name}: rows {counts}, 202 answers read {accepted}: "
                f"{'exactly one of each per call id' if ok else 'MISMATCH'}",
                flush=True,
            )
            for row in results:
                row["exactly_once"] = ok
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument(
        "--dup-every", type=int, default=10, help="every Nth request repeats the previous call id"
    )
    parser.add_argument(
        "--rate-cap", type=int, default=3000, help="payloads generated per thread per second of run"
    )
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    countersign = str(Path(sys.executable).with_name("countersign"))
    all_rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        work = Path(tmp)
        base_env = {**os.environ, "DIALNEXA_WEBHOOK_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        base_env.pop("SLACK_BOT_TOKEN", None)
        if not args.skip_bare:
            (work / "bare_app.py").write_text(BARE_APP)
            all_rows += bench_target(
                "bare",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bare_app:app",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--host",
                    "127.0.0.1",
                ],
                base_env,
                work,
                args,
                None,
            )
        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        all_rows += bench_target(
            "sqlite",
            [countersign, "serve", "--no-workers"],
            {**base_env, "DATABASE_URL": sqlite_url},
            work,
            args,
            sqlite_url,
        )
        if not args.skip_pg and reset_pg(PG_URL):
            subprocess.run(
                [countersign, "db", "upgrade"],
                check=True,
                cwd=work,
                env={**base_env, "DATABASE_URL": PG_URL},
                capture_output=True,
            )
            all_rows += bench_target(
                "postgresql",
                [countersign, "serve", "--no-workers"],
                {**base_env, "DATABASE_URL": PG_URL},
                work,
                args,
                PG_URL,
            )
    print(
        "\n| target | conns | accepted/s | req/s | p50 ms | p99 ms | peak RSS MB | exactly once |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in all_rows:
        print(
            f"| {r['target']} | {r['conns']} | {r['accepted_per_s']} | {r['req_per_s']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r.get('peak_rss_mb')} | "
            f"{r.get('exactly_once', '-')} |"
        )


if __name__ == "__main__":
    main()
