"""The cases the behind-a-proxy page shows.

``python -m snippets.webhook_design.behind_a_proxy.demo CASE``, with CASE one
of ``break`` (a Twilio delivery through nginx, the app as is), ``fix``
(``ProxyFix`` for the proxy's requests only), ``spoof`` (forged
``X-Forwarded-*`` headers, trusted too widely and not), ``uvicorn``
(``forwarded_allow_ips``), ``django`` (``SECURE_PROXY_SSL_HEADER`` and
``USE_X_FORWARDED_HOST``) and ``body-size`` (nginx's ``client_max_body_size``).
Every request goes to 127.0.0.1; the proxy is Debian's nginx with a
self-signed certificate made for the run. Nothing contacts Twilio.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from werkzeug.middleware.proxy_fix import ProxyFix

from snippets.support.cases import run_cases
from snippets.support.webhook_design_frameworks import (
    configure_django,
    django_app,
    serve_asgi,
    serve_wsgi,
)
from snippets.support.webhook_design_nginx import (
    Proxy,
    direct_post,
    https_post,
    serve_nginx,
)
from snippets.webhook_design.behind_a_proxy.apps import (
    ForwardedOnlyFromProxy,
    create_asgi_receiver,
    create_flask_receiver,
)
from snippets.webhook_design.behind_a_proxy.django_views import BEHIND_ONE_PROXY

__all__ = [
    "AUTH_TOKEN",
    "FORGED",
    "PROXY_ADDRESS",
    "flask_behind_nginx",
    "one_hop_too_many",
    "proxy_fix_for_anyone",
    "signed",
    "trust_nginx",
]

AUTH_TOKEN = "12345678901234567890123456789012"  # made up
PARAMS = {"From": "+15550001111", "Body": "Hi", "MessageSid": "SM1"}
PUBLIC = "https://hooks.example.com"
PROXY_ADDRESS = "127.0.0.2"  # nginx's proxy_bind: where the app sees it from
FORGED = {  # what anyone can send; 54.172.60.1 stands in for a Twilio address
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-For": "54.172.60.1",
}
PORT = re.compile(r"127\.0\.0\.1:\d+")


def signed(path: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a Twilio delivery to ``PUBLIC + path``."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, PARAMS)
    return urlencode(PARAMS).encode(), {"X-Twilio-Signature": signature}


@contextmanager
def flask_behind_nginx(wrap: Any = None) -> Iterator[tuple[Proxy, str]]:
    """The Flask receiver (its WSGI app wrapped by ``wrap``) behind nginx."""
    app = create_flask_receiver(AUTH_TOKEN)
    if wrap is not None:
        app.wsgi_app = wrap(app.wsgi_app)  # type: ignore[method-assign]
    with ExitStack() as stack:
        base = stack.enter_context(serve_wsgi(app))
        proxy = stack.enter_context(serve_nginx(urlsplit(base).port or 0))
        yield proxy, base


def row(label: str, answer: tuple[int, str]) -> str:
    status, text = answer
    return f"{label:<44} {status} {PORT.sub('127.0.0.1:<port>', text)}"


def show_break() -> list[str]:
    """The app as it runs locally, now behind nginx."""
    body, headers = signed("/twilio/sms")
    with flask_behind_nginx() as (proxy, _):
        answer = https_post(proxy, "/twilio/sms", body, headers)
    return [row("through nginx, the app as is", answer)]


# --8<-- [start:fix]
def trust_nginx(wsgi_app: Any) -> ForwardedOnlyFromProxy:
    """One proxy in front: one hop of X-Forwarded-For, -Proto and -Host,
    believed only when nginx sent them."""
    fixed = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1)
    return ForwardedOnlyFromProxy(fixed, proxies=[PROXY_ADDRESS])


def show_fix() -> list[str]:
    body, headers = signed("/twilio/sms")
    with flask_behind_nginx(trust_nginx) as (proxy, _):
        answer = https_post(proxy, "/twilio/sms", body, headers)
    return [row("through nginx, ProxyFix from nginx only", answer)]


# --8<-- [end:fix]


def proxy_fix_for_anyone(wsgi_app: Any) -> ProxyFix:
    return ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1)


def one_hop_too_many(wsgi_app: Any) -> ForwardedOnlyFromProxy:
    fixed = ProxyFix(wsgi_app, x_for=2, x_proto=1, x_host=1)
    return ForwardedOnlyFromProxy(fixed, proxies=[PROXY_ADDRESS])


def show_spoof() -> list[str]:
    """Forged X-Forwarded-* headers, straight to the app and through nginx."""
    body, headers = signed("/twilio/sms")
    forged = {**headers, **FORGED}
    lines = []
    for label, wrap in [
        ("direct, ProxyFix for any client", proxy_fix_for_anyone),
        ("direct, ProxyFix from nginx only", trust_nginx),
    ]:
        with flask_behind_nginx(wrap) as (_, base):
            lines.append(row(label, direct_post(base, "/twilio/sms", body, forged)))
    for label, wrap in [
        ("through nginx, x_for=1 (one proxy)", trust_nginx),
        ("through nginx, x_for=2 (one hop too many)", one_hop_too_many),
    ]:
        with flask_behind_nginx(wrap) as (proxy, _):
            answer = https_post(proxy, "/twilio/sms", body, {**headers, **FORGED})
            lines.append(row(label, answer))
    return lines


def show_uvicorn() -> list[str]:
    """uvicorn's forwarded_allow_ips: its default, the proxy's address, '*'."""
    body, headers = signed("/asgi/twilio/sms")
    forged = {**headers, **FORGED}
    lines = []
    for label, allow, direct in [
        ("through nginx, default allow list", None, False),
        ("through nginx, forwarded_allow_ips=127.0.0.2", PROXY_ADDRESS, False),
        ("direct, forwarded_allow_ips='*'", "*", True),
        ("direct, forwarded_allow_ips=127.0.0.2", PROXY_ADDRESS, True),
    ]:
        options = {} if allow is None else {"forwarded_allow_ips": allow}
        app = create_asgi_receiver(AUTH_TOKEN)
        with ExitStack() as stack:
            base = stack.enter_context(serve_asgi(app, **options))
            if direct:
                answer = direct_post(base, "/asgi/twilio/sms", body, forged)
            else:
                port = urlsplit(base).port or 0
                proxy = stack.enter_context(serve_nginx(port, asgi_port=port))
                answer = https_post(proxy, "/asgi/twilio/sms", body, headers)
        lines.append(row(label, answer))
    return lines


def show_body_size() -> list[str]:
    """A 2 MiB delivery: nginx's default limit, then a route that allows it."""
    body = b"Body=" + b"x" * (2 * 1024 * 1024 - 5)
    with flask_behind_nginx(trust_nginx) as (proxy, _):
        return [
            row(
                "2 MiB to /twilio/sms (default 1m)",
                https_post(proxy, "/twilio/sms", body),
            ),
            row(
                "2 MiB to /uploads/hook (10m)", https_post(proxy, "/uploads/hook", body)
            ),
        ]


def show_django() -> list[str]:
    """Django's defaults, then BEHIND_ONE_PROXY, then forged headers."""
    from django.test.utils import override_settings  # type: ignore[import-untyped]

    from snippets.webhook_design.raw_body.demo import SECRET

    configure_django([SECRET])  # once per process; the raw-body page's secret
    logging.getLogger("django.security").setLevel(logging.CRITICAL)
    body, headers = signed("/django/twilio/sms")
    urls = {"ROOT_URLCONF": "snippets.webhook_design.behind_a_proxy.django_views"}
    inner_host = {"ALLOWED_HOSTS": ["127.0.0.1", "hooks.example.com"]}
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    lines = []
    for label, settings, forged, wrap in [
        ("through nginx, Django's defaults", inner_host, None, None),
        ("through nginx, BEHIND_ONE_PROXY", BEHIND_ONE_PROXY, None, None),
        ("direct, forged https + public host", BEHIND_ONE_PROXY, public, None),
        ("direct, forged X-Forwarded-Host", BEHIND_ONE_PROXY, FORGED, None),
        ("direct, forged, ForwardedOnlyFromProxy", BEHIND_ONE_PROXY, public, True),
    ]:
        app = django_app()
        if wrap:
            app = ForwardedOnlyFromProxy(app, proxies=[PROXY_ADDRESS])
        with override_settings(**urls, **settings), serve_wsgi(app) as base:
            if forged is None:
                port = urlsplit(base).port or 0
                with serve_nginx(port) as proxy:
                    answer = https_post(proxy, "/django/twilio/sms", body, headers)
            else:
                sent = {**headers, **forged}
                answer = direct_post(base, "/django/twilio/sms", body, sent)
        lines.append(row(label, answer))
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "break": show_break,
                "fix": show_fix,
                "spoof": show_spoof,
                "uvicorn": show_uvicorn,
                "body-size": show_body_size,
                "django": show_django,
            }
        )
    )
