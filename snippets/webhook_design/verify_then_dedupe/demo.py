"""The cases the verify-then-dedupe page shows.

``python -m snippets.webhook_design.verify_then_dedupe.demo CASE``, with CASE
one of ``verify`` (a delivery and its broken variants, over HTTP), ``race``
(two copies at once against both replay guards), ``reserialized`` (what
`json.dumps` does to the signed bytes) and ``interop`` (signatures checked
both ways against the reference library, `standardwebhooks`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import standardwebhooks

from snippets.support.cases import run_cases
from snippets.support.webhook_design_dedupe import BODY, run_race
from snippets.support.webhook_design_endpoint import post_webhook
from snippets.webhook_design.verify_then_dedupe import (
    DeliveryStore,
    VerificationError,
    Verifier,
    WebhookReceiver,
    new_secret,
    signature_headers,
)
from snippets.webhook_design.verify_then_dedupe.broken import (
    CheckThenInsertStore,
    reserialized,
)

__all__: list[str] = []


# --8<-- [start:demo-verify]
def show_verify() -> list[str]:
    """Send a valid delivery and its broken variants; report each answer."""
    old, new, retired = new_secret(), new_secret(), new_secret()
    now = int(time.time())
    cases = [  # label, signing keys, message id, timestamp
        ("signed with the new key", [new], "msg_1", now),
        ("the same delivery again", [new], "msg_1", now),
        ("signed with the new and old keys", [new, old], "msg_2", now),
        ("signed with a retired key", [retired], "msg_3", now),
        ("body re-serialized by json", [new], "msg_4", now),
        ("timestamp 10 minutes old", [new], "msg_5", now - 600),
        ("timestamp 10 minutes ahead", [new], "msg_6", now + 600),
    ]
    lines = []
    with tempfile.TemporaryDirectory() as directory:
        store = DeliveryStore(Path(directory) / "deliveries.db")
        verifier = Verifier([new, old])  # the receiver knows both during rotation
        with WebhookReceiver(verifier, store, lambda c, d: "accepted") as receiver:
            for label, keys, msg_id, stamp in cases:
                headers = signature_headers(keys, msg_id, stamp, BODY)
                body = reserialized(BODY) if "json" in label else BODY
                status, text = post_webhook(receiver.url, headers, body)
                lines.append(f"{label:<33} {status} {text}")
    return lines


# --8<-- [end:demo-verify]


def show_race() -> list[str]:
    """Two copies at once, against each replay guard: runs and answers."""
    lines = []
    with tempfile.TemporaryDirectory() as directory:
        for store_type in (CheckThenInsertStore, DeliveryStore):
            runs, answers = run_race(store_type, Path(directory))
            times = "time" if runs == 1 else "times"
            lines.append(
                f"{store_type.__name__:<20} processed {runs} {times:<5}"
                f"  answers: {', '.join(answers)}"
            )
    return lines


def show_reserialized() -> list[str]:
    """The signed bytes next to what `reserialized` makes of them."""
    return [
        f"signed bytes : {BODY.decode()}",
        f"after json   : {reserialized(BODY).decode()}",
    ]


def show_interop() -> list[str]:
    """Our signature through the reference verifier, and the other way round."""
    secret, stamp = new_secret(), int(time.time())
    ours = signature_headers([secret], "msg_interop", stamp, BODY)
    reference = standardwebhooks.Webhook(secret)
    when = datetime.fromtimestamp(stamp, tz=UTC)
    theirs = ours | {
        "webhook-signature": reference.sign("msg_interop", when, BODY.decode())
    }
    results = []
    try:
        reference.verify(BODY, ours)
        results.append("ok")
    except standardwebhooks.WebhookVerificationError as error:
        results.append(f"rejected ({error})")
    try:
        Verifier([secret]).verify(theirs, BODY)
        results.append("ok")
    except VerificationError as error:
        results.append(f"rejected ({error})")
    same = ours["webhook-signature"] == theirs["webhook-signature"]
    version = standardwebhooks.__version__
    return [
        f"signed here, verified by standardwebhooks {version}: {results[0]}",
        f"signed by standardwebhooks {version}, verified here: {results[1]}",
        f"identical signature strings for the same input: {'yes' if same else 'no'}",
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "verify": show_verify,
                "race": show_race,
                "reserialized": show_reserialized,
                "interop": show_interop,
            }
        )
    )
