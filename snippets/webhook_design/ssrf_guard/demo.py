"""The cases the SSRF-guard page shows. Nothing connects outside loopback.

``python -m snippets.webhook_design.ssrf_guard.demo CASE``, with CASE one of
``addresses`` (customer URLs through the literal check and through
`UrlGuard`, names answered by a stub resolver), ``rebinding`` (a name that
answers a public address, then 127.0.0.1: the naive check-then-urlopen and
the pinned send) and ``redirect`` (a loopback endpoint that redirects to the
metadata address).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from snippets.support.cases import run_cases
from snippets.support.webhook_design_ssrf import (
    PUBLIC,
    OutboundRefused,
    Recorder,
    RecordingConnector,
    StubResolver,
    loopback_only,
    stub_getaddrinfo,
)
from snippets.webhook_design.ssrf_guard import BlockedURL, UrlGuard, send_webhook
from snippets.webhook_design.ssrf_guard.broken import check_literal, naive_send

__all__ = ["URLS", "verdicts"]

BODY, HEADERS = b'{"type":"invoice.paid"}', {"Content-Type": "application/json"}
NAMES = {
    "hooks.customer.example": [[PUBLIC]],
    "split.customer.example": [[PUBLIC, "10.0.0.5"]],  # one bad answer of two
    "metadata.customer.example": [["169.254.169.254"]],
}
URLS = [
    "https://hooks.customer.example/webhook",
    "http://hooks.customer.example/webhook",
    "https://10.0.0.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://2130706433/",
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[fe80::1]/",
    "https://[fd00:ec2::254]/",
    "https://100.64.0.1/",
    "https://224.0.0.1/",
    "https://0.0.0.0/",
    "https://split.customer.example/",
    "https://metadata.customer.example/",
]


def verdicts(url: str, guard: UrlGuard) -> tuple[str, str]:
    """What the literal check and the guard make of ``url``."""
    try:
        check_literal(url)
        literal = "passes"
    except ValueError:
        literal = "refused"
    try:
        target = guard.check(url)
        guarded = f"allowed, pinned to {target.address}"
    except BlockedURL as error:
        guarded = f"refused: {error}"
    return literal, guarded


def show_addresses() -> Iterator[str]:
    guard = UrlGuard(StubResolver(NAMES))
    yield "URL | literal check | UrlGuard"
    for url in URLS:
        literal, guarded = verdicts(url, guard)
        yield f"{url} | {literal} | {guarded}"


def show_rebinding() -> Iterator[str]:
    # The customer's DNS answers a public address, then 127.0.0.1, where an
    # "internal" service listens (standing in for an admin API).
    with loopback_only() as refused, Recorder().running() as internal:
        host = "rebind.customer.example"
        url = f"http://{host}:{internal.port}/webhook"
        naive_dns = StubResolver({host: [[PUBLIC], ["127.0.0.1"]]})
        with stub_getaddrinfo(naive_dns):
            status = naive_send(url, BODY, HEADERS)
        yield f"naive: {len(naive_dns.calls)} lookups, check passed, status {status}"
        paths = [r.split("/", 1)[1] for r in internal.requests]
        yield f"naive: internal service received {len(paths)} POST to /{paths[0]}"
        pinned_dns = StubResolver({host: [[PUBLIC], ["127.0.0.1"]]})
        connector = RecordingConnector()
        guard = UrlGuard(pinned_dns, allow_http=True)
        try:
            send_webhook(url, BODY, HEADERS, guard, connect=connector)
        except OutboundRefused:
            pass
        addresses = [str(t.address) for t in connector.targets]
        yield f"pinned: {len(pinned_dns.calls)} lookup, connects to {addresses}"
        yield f"internal service requests in total: {len(internal.requests)}"
        yield f"connections refused outside loopback: {len(refused)}"


def show_redirect() -> Iterator[str]:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with loopback_only() as refused, Recorder(redirect_to=metadata).running() as hop:
        guard = UrlGuard(allow_http=True, allow=["127.0.0.1/32"])  # test only
        url = f"http://127.0.0.1:{hop.port}/webhook"
        kept = send_webhook(url, BODY, HEADERS, guard)
        yield f"max_redirects=0: status {kept.status}, hops {len(kept.hops)}"
        try:
            send_webhook(url, BODY, HEADERS, guard, max_redirects=3)
        except BlockedURL as error:
            yield f"max_redirects=3: refused at hop 2: {error}"
        yield f"loopback endpoint received {len(hop.requests)} POSTs"
        yield f"connections refused outside loopback: {len(refused)}"


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "addresses": show_addresses,
                "rebinding": show_rebinding,
                "redirect": show_redirect,
            }
        )
    )
