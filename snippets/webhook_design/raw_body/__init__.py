"""Reading the raw body in Django, Django REST framework, Flask and FastAPI.

A webhook signature covers the bytes the provider sent. Each module here is
one framework's endpoint that verifies exactly those bytes, with the Standard
Webhooks `Verifier` of the verify-then-dedupe page, and parses only after:

* `django_webhook`: a Django view on ``request.body``;
* ``drf_view.DrfWebhookView``: a DRF ``APIView`` that reads ``request.body``
  before ``request.data`` (in its own module: importing DRF needs configured
  Django settings);
* `create_flask_app`: Flask on ``request.get_data()``, JSON or form-encoded;
* `create_fastapi_app`: FastAPI on ``await request.body()``.

The handlers that lose the signed bytes are in ``broken.py`` and
``broken_drf.py``; the cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.raw_body.django_view import django_webhook
from snippets.webhook_design.raw_body.fastapi_app import create_fastapi_app
from snippets.webhook_design.raw_body.flask_app import create_flask_app

__all__ = ["create_fastapi_app", "create_flask_app", "django_webhook"]
