"""The cases the raw-body page shows.

``python -m snippets.webhook_design.raw_body.demo CASE``, with CASE one of
``frameworks`` (one signed delivery to every endpoint, the raw-body ones and
the broken ones, each served by a real server on loopback) and ``body`` (the
signed bytes next to what re-serialising makes of them).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from snippets.support.cases import run_cases
from snippets.support.webhook_design_frameworks import (
    configure_django,
    django_app,
    post,
    serve_asgi,
    serve_wsgi,
)
from snippets.webhook_design.raw_body import create_fastapi_app, create_flask_app
from snippets.webhook_design.raw_body.broken import (
    RedactingMiddleware,
    create_fastapi_broken,
    create_flask_broken,
)
from snippets.webhook_design.verify_then_dedupe import signature_headers

__all__ = ["BODY", "FORM", "SECRET", "endpoints"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a fixed test secret
# Indented, keys not sorted, UTF-8 text and 10.50: as a provider might send.
BODY = (
    '{\n  "type": "invoice.paid",\n  "id": "evt_1",\n'
    '  "customer": "José",\n  "amount": 10.50\n}\n'
).encode()
FORM = b"type=invoice.paid&id=evt_2&customer=Jos%C3%A9"
MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\n'
    b"invoice.paid\r\n--b--\r\n"
)
MULTIPART_TYPE = "multipart/form-data; boundary=b"
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


@contextmanager
def endpoints() -> Iterator[dict[str, str]]:
    """Serve every endpoint of the page; yield label -> URL."""
    configure_django([SECRET])
    with ExitStack() as stack:
        django_url = stack.enter_context(serve_wsgi(django_app()))
        flask = stack.enter_context(serve_wsgi(create_flask_app([SECRET])))
        flask_bad = stack.enter_context(serve_wsgi(create_flask_broken([SECRET])))
        fastapi = stack.enter_context(serve_asgi(create_fastapi_app([SECRET])))
        fastapi_bad = stack.enter_context(serve_asgi(create_fastapi_broken([SECRET])))
        redacted = create_fastapi_app([SECRET])
        redacted.add_middleware(RedactingMiddleware)
        fastapi_mw = stack.enter_context(serve_asgi(redacted))
        yield {
            "django request.body": f"{django_url}/django/webhook",
            "django json.dumps(json.loads(body))": f"{django_url}/django/broken",
            "drf request.body": f"{django_url}/drf/webhook",
            "drf json.dumps(request.data)": f"{django_url}/drf/broken-data",
            "drf request.data, then request.body": (
                f"{django_url}/drf/broken-body-after-data"
            ),
            "flask request.get_data()": f"{flask}/webhook",
            "flask json.dumps(request.get_json())": f"{flask_bad}/get-json",
            "flask request.form, then get_data()": f"{flask_bad}/form-first",
            "fastapi await request.body()": f"{fastapi}/webhook",
            "fastapi json.dumps(event: dict = Body())": f"{fastapi_bad}/webhook",
            "fastapi body() behind RedactingMiddleware": f"{fastapi_mw}/webhook",
        }


def deliver(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    """Sign ``body`` as a Standard Webhooks sender does and POST it."""
    headers = signature_headers([SECRET], "msg_1", int(time.time()), body)
    return post(url, body, headers | {"Content-Type": content_type})


# --8<-- [start:demo]
def show_frameworks() -> list[str]:
    """One signed delivery to every endpoint; each answer."""
    lines = []
    with endpoints() as urls:
        for label, url in urls.items():
            runs = [] if "form," in label else [(BODY, JSON_TYPE)]
            if label.startswith("flask request"):
                runs.append((FORM, FORM_TYPE))
            if label.startswith("drf request.data"):
                runs.append((MULTIPART, MULTIPART_TYPE))
            for body, content_type in runs:
                status, text = deliver(url, body, content_type)
                kind = {BODY: "json", FORM: "form"}.get(body, "multipart")
                lines.append(f"{label:<42} {kind:<9} {status} {text}")
    return lines


# --8<-- [end:demo]


def show_body() -> list[str]:
    """The signed bytes and one re-serialisation of them."""
    again = json.dumps(json.loads(BODY)).encode()
    return [
        f"signed   {len(BODY):>3} bytes: {BODY.decode()!r}",
        f"verified {len(again):>3} bytes: {again.decode()!r}",
    ]


if __name__ == "__main__":
    sys.exit(run_cases({"frameworks": show_frameworks, "body": show_body}))
