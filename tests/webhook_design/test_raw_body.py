"""Tests for snippets/webhook_design/raw_body/.

Real apps on real servers on loopback, started once for the module: Django
5.2 (with DRF) and Flask under wsgiref, FastAPI under uvicorn on a thread.
Each request is a real HTTP POST signed with the guide's Standard Webhooks
signer. The broken handlers verify a re-serialisation of the body (or, after
``request.form``, nothing at all) and fail; the raw-body handlers accept the
same deliveries.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from importlib.metadata import version

import django  # type: ignore[import-untyped]
import fastapi
import flask
import pytest
import rest_framework  # type: ignore[import-untyped]
import uvicorn

from snippets.support.webhook_design_frameworks import post, serve_wsgi
from snippets.webhook_design.raw_body import create_flask_app
from snippets.webhook_design.raw_body.demo import (
    BODY,
    FORM,
    MULTIPART,
    MULTIPART_TYPE,
    SECRET,
    endpoints,
)
from snippets.webhook_design.verify_then_dedupe import new_secret, signature_headers
from tools.errors import ErrorRecorder

GOOD = [
    "django request.body",
    "drf request.body",
    "flask request.get_data()",
    "fastapi await request.body()",
]
REENCODING = [
    "django json.dumps(json.loads(body))",
    "drf json.dumps(request.data)",
    "flask json.dumps(request.get_json())",
    "fastapi json.dumps(event: dict = Body())",
    "fastapi body() behind RedactingMiddleware",
]
# Bodies a provider may send. Only the first is byte for byte what
# json.dumps writes, so a handler that re-serialises passes on it alone.
BODIES = {
    "json.dumps-shaped": b'{"type": "invoice.paid", "id": "evt_1"}',
    "compact": b'{"type":"invoice.paid","id":"evt_1"}',
    "indented": BODY,
    "utf-8 text": '{"type": "invoice.paid", "name": "Zoë"}'.encode(),
    "float 10.50": b'{"type": "invoice.paid", "amount": 10.50}',
    "escaped slash": b'{"type": "invoice.paid", "url": "a\\/b"}',
}


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    print(
        f"\nDjango {django.__version__}, DRF {rest_framework.__version__}, "
        f"Flask {version('flask')}, Werkzeug {version('werkzeug')}, "
        f"FastAPI {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
        f"Python {platform.python_version()}"
    )
    with endpoints() as served:
        yield served


def deliver(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    secret: str = SECRET,
) -> tuple[int, str]:
    headers = signature_headers([secret], "msg_1", int(time.time()), body)
    return post(url, body, headers | {"Content-Type": content_type})


@pytest.mark.parametrize("label", GOOD)
@pytest.mark.parametrize("shape", BODIES)
def test_raw_body_handlers_accept_every_shape(
    urls: dict[str, str], label: str, shape: str
) -> None:
    assert deliver(urls[label], BODIES[shape]) == (200, "accepted invoice.paid")


@pytest.mark.parametrize("label", REENCODING)
@pytest.mark.parametrize("shape", BODIES)
def test_reencoding_handlers_pass_only_on_the_lucky_shape(
    urls: dict[str, str], label: str, shape: str
) -> None:
    status, text = deliver(urls[label], BODIES[shape])
    print(f"{label} / {shape}: {status} {text}")
    if shape == "json.dumps-shaped":  # why it passed the handler's own tests
        assert status == 200
    else:
        assert (status, text) == (401, "no matching signature")


@pytest.mark.parametrize("label", GOOD)
def test_raw_body_handlers_reject_a_wrong_secret_and_a_changed_body(
    urls: dict[str, str], label: str
) -> None:
    assert deliver(urls[label], BODY, secret=new_secret())[0] == 401
    headers = signature_headers([SECRET], "msg_1", int(time.time()), BODY)
    tampered = BODY.replace(b"10.50", b"1050")
    assert post(urls[label], tampered, headers) == (401, "no matching signature")


def test_reencoded_bytes_differ_from_the_signed_bytes() -> None:
    assert json.dumps(json.loads(BODY)).encode() != BODY
    shaped = BODIES["json.dumps-shaped"]
    assert json.dumps(json.loads(shaped)).encode() == shaped
    # Flask's own JSON provider sorts keys (DefaultJSONProvider.sort_keys).
    app = flask.Flask(__name__)
    sorted_keys = '{"id": "evt_1", "type": "invoice.paid"}'
    assert app.json.dumps(json.loads(shaped)) == sorted_keys


def test_flask_form_read_first_leaves_get_data_empty(urls: dict[str, str]) -> None:
    form = "application/x-www-form-urlencoded"
    good = deliver(urls["flask request.get_data()"], FORM, form)
    broken = deliver(urls["flask request.form, then get_data()"], FORM, form)
    print(f"get_data() first: {good}; request.form first: {broken}")
    assert good == (200, "accepted invoice.paid")
    assert broken == (401, "no matching signature (get_data() returned 0 bytes)")


def test_drf_body_after_data(urls: dict[str, str], error_record: ErrorRecorder) -> None:
    url = urls["drf request.data, then request.body"]
    # DRF 3.18 parses JSON and form bodies from a copy of request.body ...
    assert deliver(url, BODY) == (200, "accepted invoice.paid")
    # ... but the multipart parser reads the stream itself.
    status, text = deliver(url, MULTIPART, MULTIPART_TYPE)
    print(f"multipart: {status} {text}")
    assert (status, text) == (
        500,
        "RawPostDataException: You cannot access body after reading from "
        "request's data stream",
    )
    error_record(
        text,  # the view answers with the exception's class name and message
        id="body-after-data",
        component="Django",
        version=django.__version__,
        section="drf-body-after-data",
    )


def test_drf_raw_body_view_reads_multipart_too(urls: dict[str, str]) -> None:
    status, text = deliver(urls["drf request.body"], MULTIPART, MULTIPART_TYPE)
    assert (status, text) == (200, "accepted invoice.paid")


def test_django_refuses_a_body_over_data_upload_max_memory_size(
    urls: dict[str, str],
) -> None:
    from django.conf import settings  # type: ignore[import-untyped]

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 2_621_440  # Django's default, 2.5 MB
    fits = BODY + b" " * (limit - len(BODY))  # exactly the limit
    over = fits + b" "  # one byte more
    assert len(fits) == limit and len(over) == limit + 1
    assert deliver(urls["django request.body"], fits) == (200, "accepted invoice.paid")
    status, _ = deliver(urls["django request.body"], over)
    print(f"Django with {len(over)} bytes: {status}")
    assert status == 400
    # DRF 3.17.2+ parses request.data from request.body: the same limit holds.
    for label in ("drf request.body", "drf json.dumps(request.data)"):
        assert deliver(urls[label], over)[0] == 400


def test_flask_has_no_body_limit_until_max_content_length() -> None:
    body = BODY + b" " * 3_000_000  # 3 MB, over Django's default
    app = create_flask_app([SECRET])
    assert app.config["MAX_CONTENT_LENGTH"] is None
    with serve_wsgi(app) as base:
        assert deliver(f"{base}/webhook", body) == (200, "accepted invoice.paid")
    app = create_flask_app([SECRET])
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    with serve_wsgi(app) as base:
        assert deliver(f"{base}/webhook", body)[0] == 413


def test_fastapi_reads_any_size_unless_you_cap_it(urls: dict[str, str]) -> None:
    body = BODY + b" " * 3_000_000  # Starlette's request.body() has no limit
    answer = deliver(urls["fastapi await request.body()"], body)
    assert answer == (200, "accepted invoice.paid")


def test_django_view_needs_csrf_exempt(urls: dict[str, str]) -> None:
    base = urls["django request.body"].removesuffix("/django/webhook")
    status, _ = deliver(f"{base}/django/no-csrf-exempt", BODY)
    print(f"the same view without csrf_exempt: {status}")
    assert status == 403  # CsrfViewMiddleware: a webhook carries no CSRF token
