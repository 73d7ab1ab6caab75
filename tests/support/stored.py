"""Calls and requests written straight to the tables, in bulk: a store full of other calls.

`seed_others(db, count)` fills the store with decided requests whose keys are near misses of the
ones tests look up (neighbouring phone numbers, similar emails and invoice numbers), all sharing
the company's own number. `add_call(db, ...)` adds one call and its request with chosen keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from storage.db import Database
from storage.tables import calls, decisions, requests
from tests.support.requests import NOW

COMPANY_NUMBER = "+12137771234"


def _call_row(call_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "direction": "inbound",
        "status": "completed",
        "from_number": "14155550000",
        "to_number": COMPANY_NUMBER,
        "summary": "Caller asked finance for help.",
        "transcript": [{"role": "user", "content": "Please help with my bill."}],
        "analysis": {},
        "unparsed": {},
        "redactions": [],
        "received_at": at,
        "updated_at": at,
        **fields,
    }


def _request_row(request_id: str, call_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "call_id": call_id,
        "intent": "refund_request",
        "resolved_by": "intent field 'refund_request'",
        "status": "approved",
        "channel": "C0REFUNDS",
        "flags": [],
        "captured": {"amount": "120", "currency": "USD", "customer_name": "Another Caller"},
        "alerts": [],
        "amount": Decimal(120),
        "currency": "USD",
        "sensitive": False,
        "required_approvals": 1,
        "version": 2,
        "write_status": "done",
        "write_attempts": 1,
        "created_at": at,
        "updated_at": at,
        **fields,
    }


async def seed_others(db: Database, count: int, *, now: datetime = NOW) -> None:
    """`count` decided requests, one a minute back from `now`, with near-miss keys."""
    call_rows, request_rows, history = [], [], []
    for n in range(count):
        at = now - timedelta(days=1, minutes=n)
        call_id, request_id = f"call_other_{n:05d}", f"req_other_{n:05d}"
        phone = f"1415666{n:04d}"
        call_rows.append(_call_row(call_id, at, from_number=phone))
        request_rows.append(
            _request_row(
                request_id,
                call_id,
                at,
                customer_phone=phone,
                customer_email=f"caller{n}@example.com",
                invoice_number=f"INV-{20410 + n}",
                decided_by="U0BEN",
                decided_at=at,
            )
        )
        history.append(
            {"request_id": request_id, "action": "approved", "user_id": "U0BEN", "at": at}
        )
    async with db.transaction() as tx:
        await tx.conn.execute(calls.insert(), call_rows)
        await tx.conn.execute(requests.insert(), request_rows)
        await tx.conn.execute(decisions.insert(), history)


async def add_call(
    db: Database,
    name: str,
    *,
    at: datetime = NOW,
    call: dict[str, Any] | None = None,
    **request: Any,
) -> str:
    """One call (`call_<name>`) and its request (`req_<name>`); returns the request id."""
    call_id, request_id = f"call_{name}", f"req_{name}"
    async with db.transaction() as tx:
        await tx.conn.execute(calls.insert().values(**_call_row(call_id, at, **(call or {}))))
        await tx.conn.execute(
            requests.insert().values(**_request_row(request_id, call_id, at, **request))
        )
    return request_id
