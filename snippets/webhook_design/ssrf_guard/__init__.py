"""Sending webhooks to customer URLs without reaching your own network.

A customer types the URL your service posts webhooks to. This package keeps
those posts on the public internet:

* `forbidden_reason` is the address policy: loopback, private, link-local
  (the 169.254.169.254 metadata address), unspecified, multicast, reserved
  and special-purpose ranges are refused, also inside IPv6 forms
  (``::ffff:10.0.0.1``); `numeric_host` reads ``2130706433`` and ``0x7f.1``
  the way the C resolver does.
* `UrlGuard` checks a URL: the scheme, then every address its host resolves
  to, and returns a `Target` pinned to the checked address.
* `send_webhook` connects to that address and nowhere else (`connect_pinned`,
  so DNS rebinding cannot move it) and checks every redirect hop again.

The checks that let internal addresses through are in ``broken.py``; the
cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.ssrf_guard.client import (
    Connector,
    PinnedHTTPConnection,
    PinnedHTTPSConnection,
    Sent,
    connect_pinned,
    send_webhook,
)
from snippets.webhook_design.ssrf_guard.guard import (
    BlockedURL,
    Resolver,
    Target,
    UrlGuard,
    system_resolver,
)
from snippets.webhook_design.ssrf_guard.policy import (
    IPAddress,
    forbidden_reason,
    numeric_host,
)

__all__ = [
    "BlockedURL",
    "Connector",
    "IPAddress",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "Resolver",
    "Sent",
    "Target",
    "UrlGuard",
    "connect_pinned",
    "forbidden_reason",
    "numeric_host",
    "send_webhook",
    "system_resolver",
]
