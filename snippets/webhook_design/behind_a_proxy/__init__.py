"""Webhooks behind a TLS-terminating proxy: rebuild the URL the provider called.

* `create_flask_receiver`: a Flask app that verifies Twilio deliveries with
  ``request.url`` and Twilio's ``RequestValidator``.
* `TrustedProxyFix`: Werkzeug's ``ProxyFix``, applied only to requests whose
  peer is the proxy, so a client that reaches the app directly cannot forge
  ``X-Forwarded-*``.
* `create_asgi_receiver`: the same check in FastAPI, for uvicorn's
  ``proxy_headers`` and ``forwarded_allow_ips``.

``nginx.conf`` is the proxy the tests run; the cases the page shows are in
``demo.py``.
"""

from snippets.webhook_design.behind_a_proxy.apps import (
    TrustedProxyFix,
    create_asgi_receiver,
    create_flask_receiver,
)

__all__ = ["TrustedProxyFix", "create_asgi_receiver", "create_flask_receiver"]
