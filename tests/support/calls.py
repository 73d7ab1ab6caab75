"""Factories for DialNexa webhook payloads and their signatures."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

WEBHOOK_SECRET = "whsec_test_only_not_a_real_secret"

REFUND_CALL: dict[str, Any] = {
    "event_type": "call_ended",
    "payload": {
        "call": {
            "id": "call_q7Lm2xR9tB4k",
            "direction": "outbound",
            "type": "phone_call",
            "category": "batch",
            "category_id": "batch_8Hn3pQ",
            "from_number": "918035550142",
            "to_number": "919876543210",
            "status": "completed",
            "agent_id": "agent_2g7Xy3tY53gRlp",
            "initiated_at": "2026-09-14T09:12:03.417Z",
            "duration": 142,
            "transcript": (
                "Agent: Hi Priya, calling about your refund request.\n"
                "User: Yes, I want the 4,500 rupee refund approved today."
            ),
            "summary": "Customer requested approval of a Rs 4,500 refund for order 1182.",
            "recording_url": "https://recordings.example/call_q7Lm2xR9tB4k.mp3?sig=EXAMPLE",
            "hangup_reason": "agent_hangup",
            "post_call_analysis": {
                "intent": "refund_request",
                "amount": "4,500",
                "currency": "INR",
                "invoice_number": "1182",
            },
        }
    },
}

INVOICE_CALL: dict[str, Any] = {
    "event_type": "call_ended",
    "payload": {
        "call": {
            "id": "call_Zt81vKw03NaE",
            "direction": "inbound",
            "type": "phone_call",
            "from_number": "14155550123",
            "to_number": "12137771234",
            "status": "completed",
            "agent_id": "agent_987654321",
            "initiated_at": "2026-09-14T15:40:55.002Z",
            "duration_in_seconds": 67,
            "transcript": json.dumps(
                [
                    {
                        "role": "assistant",
                        "content": "Thanks for calling, how can I help?",
                        "start": 0.4,
                        "end": 2.1,
                    },
                    {
                        "role": "user",
                        "content": "Please resend invoice INV-77.",
                        "start": 2.9,
                        "end": 5.6,
                    },
                ]
            ),
            "summary": "Caller asked for invoice INV-77 to be resent.",
            "recording_url": "https://storage.example/recordings/call_Zt81vKw03NaE.mp3?sig=EXAMPLE",
            "hangup_reason": "user_hangup",
            "post_call_analysis": {
                "Intent": "Invoice Resend",
                "invoice_number": "INV-77",
                "email_verified": "true",
            },
            "call_transfer": None,
        }
    },
}


def make_call(
    base: dict[str, Any] | None = None,
    *,
    event_type: str | None = None,
    analysis: dict[str, Any] | None = None,
    **call_fields: Any,
) -> dict[str, Any]:
    """A webhook body from a base shape with call fields and analysis replaced."""
    body = copy.deepcopy(base or REFUND_CALL)
    if event_type is not None:
        body["event_type"] = event_type
    call = body["payload"]["call"]
    call.update(call_fields)
    if analysis is not None:
        call["post_call_analysis"] = analysis
    return body


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """The signature header value DialNexa would send."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """Serialise a payload the way a sender would."""
    return json.dumps(payload).encode()


def signed_headers(body: bytes, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Headers for a correctly signed delivery."""
    return {"content-type": "application/json", "x-dialnexa-signature": sign(body, secret)}
