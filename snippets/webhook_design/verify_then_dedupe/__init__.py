"""Verify, then dedupe: accept each authentic, fresh webhook delivery once.

A receiver for Standard Webhooks deliveries (headers ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature``) that does three things, in
this order, before it answers:

1. checks the HMAC-SHA256 signature over the raw body bytes against every
   signing secret it knows, comparing with `hmac.compare_digest`
   (`Verifier`);
2. rejects a timestamp outside the tolerance, too old or too far ahead;
3. claims the ``webhook-id`` with ``INSERT ... ON CONFLICT DO NOTHING`` in the
   same SQLite transaction as the delivery's effect, so two copies that arrive
   at the same moment are applied once (`DeliveryStore`). A signed payload the
   effect cannot apply is parked and answered with a 2xx.

`WebhookReceiver` is the endpoint. `sign` and `signature_headers` are the
sender's side, the one Standard Webhooks signer of this guide. Standard
library only. The broken variants the page starts from are in ``broken.py``;
the cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.verify_then_dedupe.receiver import (
    MAX_BODY_BYTES,
    WebhookReceiver,
)
from snippets.webhook_design.verify_then_dedupe.signing import (
    SECRET_PREFIX,
    new_secret,
    parse_secret,
    sign,
    signature_headers,
)
from snippets.webhook_design.verify_then_dedupe.store import (
    SCHEMA,
    DeliveryStore,
    Effect,
    Parked,
)
from snippets.webhook_design.verify_then_dedupe.verifier import (
    MAX_ID_LENGTH,
    TOLERANCE_SECONDS,
    Delivery,
    VerificationError,
    Verifier,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ID_LENGTH",
    "SCHEMA",
    "SECRET_PREFIX",
    "TOLERANCE_SECONDS",
    "Delivery",
    "DeliveryStore",
    "Effect",
    "Parked",
    "VerificationError",
    "Verifier",
    "WebhookReceiver",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_headers",
]
