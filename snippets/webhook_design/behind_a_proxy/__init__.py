"""Webhooks behind a TLS-terminating proxy: rebuild the URL the provider called.

* `create_flask_receiver`: a Flask app that verifies Twilio deliveries with
  ``request.url`` and Twilio's ``RequestValidator``.
* `ForwardedOnlyFromProxy`: WSGI middleware that drops ``X-Forwarded-*`` from
  every request whose peer is not the proxy, outside Werkzeug's ``ProxyFix``
  or Django's ``SECURE_PROXY_SSL_HEADER``, so a client that reaches the app
  directly cannot forge them.
* `BEHIND_ONE_PROXY`: the Django settings for one proxy in front, and
  `django_twilio_sms`, the Django view.
* `create_asgi_receiver`: the same check in FastAPI, for uvicorn's
  ``proxy_headers`` and ``forwarded_allow_ips``.

``nginx.conf`` is the proxy the tests run; the cases the page shows are in
``demo.py``.
"""

from snippets.webhook_design.behind_a_proxy.apps import (
    ForwardedOnlyFromProxy,
    create_asgi_receiver,
    create_flask_receiver,
)
from snippets.webhook_design.behind_a_proxy.django_views import (
    BEHIND_ONE_PROXY,
    django_twilio_sms,
)

__all__ = [
    "BEHIND_ONE_PROXY",
    "ForwardedOnlyFromProxy",
    "create_asgi_receiver",
    "create_flask_receiver",
    "django_twilio_sms",
]
