"""The cases the thin-payloads page shows.

``python -m snippets.webhook_design.thin_payloads.demo order`` delivers two
updates newest first, as full payloads and as thin events; ``... demo lag``
delivers thin events right after each write, before the provider's read
replica has caught up, to a consumer that reads once and to one that reads
until the event's version is visible.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snippets.support.cases import run_cases
from snippets.support.webhook_design_endpoint import serving
from snippets.support.webhook_design_provider import DEMO_TOKEN, ProviderAPI, send_event
from snippets.webhook_design.thin_payloads import (
    CustomerStore,
    EventReceiver,
    ProviderClient,
    Snapshot,
    ThinEventConsumer,
)
from snippets.webhook_design.thin_payloads.broken import apply_full_payload, fetch_once

__all__: list[str] = []


CUSTOMER = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "address": {"line1": "12 St James's Square", "city": "London", "zip": "SW1Y"},
    "plan": "basic",
}


def describe(snapshot: Snapshot | None, current: Snapshot) -> str:
    """`v2 plan=pro current`, or what is wrong with the local copy."""
    if snapshot is None:
        return "missing"
    state = "current" if snapshot == current else "stale"
    return f"v{snapshot.version} plan={snapshot.data['plan']} {state}"


def out_of_order(workdir: Path) -> list[str]:
    """Two quick updates; both events are delivered, the newer one first."""
    lines = ["cus_1: v1 plan=basic, then v2 plan=pro; events arrive v2 first"]
    for shape in ("full", "thin"):
        provider = ProviderAPI(("127.0.0.1", 0), DEMO_TOKEN)
        v1 = provider.update("cus_1", **CUSTOMER)
        v2 = provider.update("cus_1", plan="pro")
        store = CustomerStore(workdir / f"order-{shape}.sqlite3")
        on_event: Callable[[dict[str, Any]], object]
        if shape == "full":
            events = [provider.full_event(v2), provider.full_event(v1)]
            on_event = functools.partial(apply_full_payload, store)
            how = "full payload, applied as it arrives"
        else:
            events = [provider.thin_event(v2), provider.thin_event(v1)]
            client = ProviderClient(provider.url, DEMO_TOKEN)
            on_event = ThinEventConsumer(store, client).handle
            how = "thin event, fetch + version guard"
        with serving(provider), serving(EventReceiver(("127.0.0.1", 0), on_event)) as r:
            for event in events:
                send_event(r.url, event)
        size = len(json.dumps(events[0]))
        local = describe(store.get("cus_1"), v2)
        lines.append(f"{how:<36} {size:>3} bytes/event  local: {local}")
    return lines


def lagging_replica(workdir: Path, *, lag: int = 2) -> list[str]:
    """Each event is delivered right after its write, before the replica has it."""
    lines = [f"replica: the first {lag} reads after each write see the state before it"]
    for way in ("once", "retry"):
        provider = ProviderAPI(("127.0.0.1", 0), DEMO_TOKEN, replica_lag=lag)
        store = CustomerStore(workdir / f"lag-{way}.sqlite3")
        client = ProviderClient(provider.url, DEMO_TOKEN)
        on_event: Callable[[dict[str, Any]], object]
        if way == "once":
            on_event = functools.partial(fetch_once, store, client)
            how = "fetch once"
        else:
            on_event = ThinEventConsumer(store, client).handle
            how = "fetch until fresh"
        reads = []
        with serving(provider), serving(EventReceiver(("127.0.0.1", 0), on_event)) as r:
            for changes in ({**CUSTOMER}, {"plan": "pro"}):
                current = provider.update("cus_2", **changes)
                seen = len(provider.audit)
                send_event(r.url, provider.thin_event(current))
                got = [f"v{v}" if v else "404" for _, v in provider.audit[seen:]]
                reads.append(
                    f"e{current.version} (v{current.version}): {' '.join(got)}"
                )
        local = describe(store.get("cus_2"), current)
        lines.append(f"{how:<18} {reads[0]:<20} {reads[1]:<19} local: {local}")
    return lines


def show_order() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        return out_of_order(Path(name))


def show_lag() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        return lagging_replica(Path(name))


if __name__ == "__main__":
    sys.exit(run_cases({"order": show_order, "lag": show_lag}))
