"""The Twilio receiver in Django, and the settings for one proxy in front."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
from django.views.decorators.http import (  # type: ignore[import-untyped]
    require_POST,
)
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

__all__ = ["BEHIND_ONE_PROXY", "TWILIO_AUTH_TOKEN", "django_twilio_sms", "urlpatterns"]

TWILIO_AUTH_TOKEN = "12345678901234567890123456789012"  # made up; from settings

# --8<-- [start:settings]
BEHIND_ONE_PROXY: dict[str, Any] = {  # in settings.py, one proxy in front
    # request.is_secure() is True when the proxy says the client used https
    # (default None: never read the header).
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    # request.get_host() reads X-Forwarded-Host first (default False).
    "USE_X_FORWARDED_HOST": True,
    # Still checked against the forwarded host: keep it to the public name.
    "ALLOWED_HOSTS": ["hooks.example.com"],
}
# --8<-- [end:settings]


# --8<-- [start:view]
def django_twilio_sms(request: HttpRequest) -> HttpResponse:
    """Accept a Twilio SMS webhook whose signature matches the public URL."""
    url = request.build_absolute_uri()  # scheme and host: see the settings
    who = f"url={url} client={request.META.get('REMOTE_ADDR')}"
    validator = RequestValidator(TWILIO_AUTH_TOKEN)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(url, request.POST, signature):
        return HttpResponse(f"validate returned False; {who}", status=403)
    return HttpResponse(f"accepted {request.POST.get('MessageSid', '')}; {who}")


django_twilio_sms = csrf_exempt(require_POST(django_twilio_sms))  # signed, no token
# --8<-- [end:view]

urlpatterns = [path("django/twilio/sms", django_twilio_sms)]
