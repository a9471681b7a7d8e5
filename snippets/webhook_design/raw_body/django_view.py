"""Django: verify ``request.body``, the bytes the provider signed."""

from __future__ import annotations

import json
from functools import cache

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = ["django_webhook"]


@cache
def _verifier() -> Verifier:
    return Verifier(settings.WEBHOOK_SECRETS)  # every secret you accept


# --8<-- [start:view]
def django_webhook(request: HttpRequest) -> HttpResponse:
    """Verify the raw body, then parse it. Route it with ``csrf_exempt``."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    raw: bytes = request.body  # exactly the bytes received; read it first
    try:
        _verifier().verify(dict(request.headers), raw)
    except VerificationError as error:
        return HttpResponse(str(error), status=401, content_type="text/plain")
    event = json.loads(raw)  # parse only after the signature matched
    return HttpResponse(f"accepted {event['type']}", content_type="text/plain")


# A webhook has no CSRF token: the signature authenticates it instead.
django_webhook = csrf_exempt(django_webhook)
# --8<-- [end:view]
