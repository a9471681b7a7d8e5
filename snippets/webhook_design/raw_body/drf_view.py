"""Django REST framework: verify ``request.body`` before ``request.data``.

Importing this module needs configured Django settings (DRF reads them).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponse  # type: ignore[import-untyped]
from rest_framework.request import Request  # type: ignore[import-untyped]
from rest_framework.views import APIView  # type: ignore[import-untyped]

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = ["DrfWebhookView"]


@cache
def _verifier() -> Verifier:
    return Verifier(settings.WEBHOOK_SECRETS)


# --8<-- [start:view]
class DrfWebhookView(APIView):  # type: ignore[misc]
    """Read ``request.body`` first; ``request.data`` is parsed from it after."""

    # No SessionAuthentication: it would demand a CSRF token from the provider.
    authentication_classes: ClassVar[list[type]] = []
    permission_classes: ClassVar[list[type]] = []

    def post(self, request: Request) -> HttpResponse:
        raw: bytes = request.body  # before request.data, which consumes the stream
        try:
            _verifier().verify(dict(request.headers), raw)
        except VerificationError as error:
            return HttpResponse(str(error), status=401, content_type="text/plain")
        event: Any = request.data  # safe now: DRF parses a copy of raw
        return HttpResponse(f"accepted {event['type']}", content_type="text/plain")


# --8<-- [end:view]
