"""DRF views that lose the signed bytes. Do not copy.

Importing this module needs configured Django settings (DRF reads them).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponse  # type: ignore[import-untyped]
from rest_framework.request import Request  # type: ignore[import-untyped]
from rest_framework.views import APIView  # type: ignore[import-untyped]

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__: list[str] = []


# --8<-- [start:data]
class DrfDataView(APIView):  # type: ignore[misc]
    """Verifies ``json.dumps(request.data)``: a re-encoding, not the body."""

    authentication_classes: ClassVar[list[type]] = []
    permission_classes: ClassVar[list[type]] = []

    def post(self, request: Request) -> HttpResponse:
        event: Any = request.data
        again = json.dumps(event).encode()
        try:
            Verifier(settings.WEBHOOK_SECRETS).verify(dict(request.headers), again)
        except VerificationError as error:
            return HttpResponse(str(error), status=401, content_type="text/plain")
        return HttpResponse(f"accepted {event['type']}", content_type="text/plain")


# --8<-- [end:data]


# --8<-- [start:body-after-data]
class DrfBodyAfterDataView(DrfDataView):
    """Reads ``request.data`` (say, in a logging mixin), then ``request.body``."""

    def post(self, request: Request) -> HttpResponse:
        event: Any = request.data
        try:
            raw = request.body
        except Exception as error:  # Django's RawPostDataException
            text = f"{type(error).__name__}: {error}"
            return HttpResponse(text, status=500, content_type="text/plain")
        Verifier(settings.WEBHOOK_SECRETS).verify(dict(request.headers), raw)
        return HttpResponse(f"accepted {event['type']}", content_type="text/plain")


# --8<-- [end:body-after-data]
