"""Tests for snippets/webhook_design/behind_a_proxy/.

A real nginx (Debian's, started per test with a temporary prefix and a
self-signed certificate) terminates TLS on 127.0.0.1 and forwards to Flask,
Django (wsgiref) and FastAPI (uvicorn) apps on 127.0.0.1; it connects to them
from 127.0.0.2 (``proxy_bind``), so the apps can tell it from a client that
reaches them directly. Twilio's own ``RequestValidator`` (twilio 9.13.0)
checks every delivery; nothing contacts Twilio.
"""

from __future__ import annotations

import inspect
import logging
import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import django  # type: ignore[import-untyped]
import pytest
import twilio  # type: ignore[import-untyped]
import uvicorn
from django.conf import global_settings  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from werkzeug.middleware.proxy_fix import ProxyFix

from snippets.support.services import ServiceUnavailable
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
    nginx_binary,
    serve_nginx,
)
from snippets.webhook_design.behind_a_proxy import (
    BEHIND_ONE_PROXY,
    ForwardedOnlyFromProxy,
    create_asgi_receiver,
)
from snippets.webhook_design.behind_a_proxy.demo import (
    AUTH_TOKEN,
    FORGED,
    PROXY_ADDRESS,
    flask_behind_nginx,
    one_hop_too_many,
    proxy_fix_for_anyone,
    signed,
    trust_nginx,
)
from tests.conftest import unavailable

PUBLIC_SMS = "url=https://hooks.example.com/twilio/sms"


@pytest.fixture(scope="module", autouse=True)
def nginx() -> None:
    try:
        binary = nginx_binary()
    except ServiceUnavailable as error:
        unavailable("nginx", str(error))
    if not os.path.exists("/usr/bin/openssl"):
        unavailable("openssl", "install it with: apt-get install -y openssl")
    nginx_v = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr
    print(
        f"\n{nginx_v.strip()}, twilio {twilio.__version__}, "
        f"Werkzeug {version('werkzeug')}, Django {django.__version__}, "
        f"uvicorn {uvicorn.__version__}, Python {platform.python_version()}"
    )


def sms() -> tuple[bytes, dict[str, str]]:
    return signed("/twilio/sms")


# --------------------------------------------------------------------------- #
# See it break
# --------------------------------------------------------------------------- #


def test_behind_nginx_the_app_sees_the_inner_url_and_rejects() -> None:
    body, headers = sms()
    with flask_behind_nginx() as (proxy, base):
        status, text = https_post(proxy, "/twilio/sms", body, headers)
        assert proxy.version.startswith("nginx version: nginx/")
    port = urlsplit(base).port
    assert status == 403
    assert f"url=http://127.0.0.1:{port}/twilio/sms" in text
    assert f"client={PROXY_ADDRESS}" in text  # the proxy, not the client


def test_the_same_delivery_verifies_straight_to_the_public_url() -> None:
    # The signature is right; only the URL the app rebuilt is wrong.
    _, headers = sms()
    validator = RequestValidator(AUTH_TOKEN)
    params = {"From": "+15550001111", "Body": "Hi", "MessageSid": "SM1"}
    url = "https://hooks.example.com/twilio/sms"
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    http = url.replace("https:", "http:")
    assert not validator.validate(http, params, headers["X-Twilio-Signature"])


# --------------------------------------------------------------------------- #
# The fix, and what it must not trust
# --------------------------------------------------------------------------- #


def test_proxy_fix_from_nginx_rebuilds_the_public_url() -> None:
    body, headers = sms()
    with flask_behind_nginx(trust_nginx) as (proxy, _):
        status, text = https_post(proxy, "/twilio/sms", body, headers)
    assert (status, text) == (
        200,
        f"accepted SM1; {PUBLIC_SMS} client=127.0.0.1",
    )


def test_proxy_fix_defaults_read_no_host() -> None:
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(ProxyFix).parameters.items()
        if name != "app"
    }
    assert defaults == {
        "x_for": 1,
        "x_proto": 1,
        "x_host": 0,
        "x_port": 0,
        "x_prefix": 0,
    }
    # With the defaults, the scheme is right and the host is still the inner one.
    body, headers = sms()
    with flask_behind_nginx(ProxyFix) as (proxy, base):
        status, text = https_post(proxy, "/twilio/sms", body, headers)
    assert status == 403
    assert f"url=https://127.0.0.1:{urlsplit(base).port}/twilio/sms" in text


def test_a_direct_request_with_forged_headers_is_believed_by_proxy_fix() -> None:
    body, headers = sms()
    with flask_behind_nginx(proxy_fix_for_anyone) as (_, base):
        _, text = direct_post(base, "/twilio/sms", body, {**headers, **FORGED})
    assert "url=https://evil.example/twilio/sms client=54.172.60.1" in text


def test_forged_headers_from_anyone_but_nginx_are_dropped() -> None:
    body, headers = sms()
    with flask_behind_nginx(trust_nginx) as (_, base):
        _, text = direct_post(base, "/twilio/sms", body, {**headers, **FORGED})
    port = urlsplit(base).port
    assert f"url=http://127.0.0.1:{port}/twilio/sms client=127.0.0.1" in text


def test_a_replayed_delivery_straight_to_the_app_is_refused() -> None:
    # A captured delivery, sent past the proxy over plain HTTP with the
    # headers nginx would have set: with ProxyFix for anyone it verifies.
    body, headers = sms()
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    with flask_behind_nginx(proxy_fix_for_anyone) as (_, base):
        assert direct_post(base, "/twilio/sms", body, {**headers, **public})[0] == 200
    with flask_behind_nginx(trust_nginx) as (_, base):
        assert direct_post(base, "/twilio/sms", body, {**headers, **public})[0] == 403


def test_nginx_replaces_a_clients_forwarded_host_and_appends_to_for() -> None:
    body, headers = sms()
    with flask_behind_nginx(trust_nginx) as (proxy, _):
        answer = https_post(proxy, "/twilio/sms", body, {**headers, **FORGED})
    assert answer == (200, f"accepted SM1; {PUBLIC_SMS} client=127.0.0.1")
    with flask_behind_nginx(one_hop_too_many) as (proxy, _):
        _, text = https_post(proxy, "/twilio/sms", body, {**headers, **FORGED})
    assert text.endswith("client=54.172.60.1")  # x_for=2 reads the forged hop


# --------------------------------------------------------------------------- #
# uvicorn
# --------------------------------------------------------------------------- #


def test_uvicorn_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    config = uvicorn.Config(create_asgi_receiver(AUTH_TOKEN))
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == "127.0.0.1,::1"


def asgi_answer(direct: bool, **options: Any) -> tuple[int, str, int]:
    body, headers = signed("/asgi/twilio/sms")
    with serve_asgi(create_asgi_receiver(AUTH_TOKEN), **options) as base:
        port = urlsplit(base).port or 0
        if direct:
            answer = direct_post(base, "/asgi/twilio/sms", body, {**headers, **FORGED})
        else:
            with serve_nginx(port, asgi_port=port) as proxy:
                answer = https_post(proxy, "/asgi/twilio/sms", body, headers)
    return (*answer, port)


def test_uvicorn_does_not_trust_a_proxy_outside_its_default_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    status, text, _ = asgi_answer(direct=False)
    assert status == 403
    assert "url=http://hooks.example.com/asgi/twilio/sms client=127.0.0.2" in text


def test_uvicorn_trusting_the_proxy_address_verifies() -> None:
    status, text, _ = asgi_answer(direct=False, forwarded_allow_ips=PROXY_ADDRESS)
    assert status == 200
    assert "url=https://hooks.example.com/asgi/twilio/sms client=127.0.0.1" in text


def test_uvicorn_star_believes_anyone_and_never_reads_forwarded_host() -> None:
    _, text, port = asgi_answer(direct=True, forwarded_allow_ips="*")
    # The scheme and client are forged; X-Forwarded-Host is not read at all.
    assert f"url=https://127.0.0.1:{port}/asgi/twilio/sms client=54.172.60.1" in text
    _, text, port = asgi_answer(direct=True, forwarded_allow_ips=PROXY_ADDRESS)
    assert f"url=http://127.0.0.1:{port}/asgi/twilio/sms client=127.0.0.1" in text


# --------------------------------------------------------------------------- #
# Django
# --------------------------------------------------------------------------- #


@pytest.fixture
def django_settings() -> Iterator[Any]:
    from django.test.utils import override_settings  # type: ignore[import-untyped]

    from snippets.webhook_design.raw_body.demo import SECRET

    configure_django([SECRET])
    logging.getLogger("django.security").setLevel(logging.CRITICAL)
    urls = "snippets.webhook_design.behind_a_proxy.django_views"

    def settings(**values: Any) -> Any:
        return override_settings(ROOT_URLCONF=urls, **values)

    yield settings


def test_django_defaults() -> None:
    assert global_settings.SECURE_PROXY_SSL_HEADER is None
    assert global_settings.USE_X_FORWARDED_HOST is False
    assert global_settings.USE_X_FORWARDED_PORT is False
    assert global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2621440


def django_through_nginx(settings: Any, **values: Any) -> tuple[int, str, int]:
    body, headers = signed("/django/twilio/sms")
    with settings(**values), serve_wsgi(django_app()) as base:
        port = urlsplit(base).port or 0
        with serve_nginx(port) as proxy:
            return (*https_post(proxy, "/django/twilio/sms", body, headers), port)


def test_django_behind_nginx_breaks_then_verifies(django_settings: Any) -> None:
    inner = {"ALLOWED_HOSTS": ["127.0.0.1", "hooks.example.com"]}
    status, text, port = django_through_nginx(django_settings, **inner)
    assert status == 403
    assert f"url=http://127.0.0.1:{port}/django/twilio/sms" in text
    status, text, _ = django_through_nginx(django_settings, **BEHIND_ONE_PROXY)
    assert status == 200
    # Django reads no X-Forwarded-For: REMOTE_ADDR stays the proxy's.
    assert text == (
        "accepted SM1; url=https://hooks.example.com/django/twilio/sms "
        f"client={PROXY_ADDRESS}"
    )


def test_django_allowed_hosts_checks_the_forwarded_host(django_settings: Any) -> None:
    body, headers = signed("/django/twilio/sms")
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    with django_settings(**BEHIND_ONE_PROXY), serve_wsgi(django_app()) as base:
        path = "/django/twilio/sms"
        assert direct_post(base, path, body, {**headers, **FORGED}) == (
            400,
            "Bad Request (400)",
        )
        # A forged https and public host, sent straight to the app: believed.
        assert direct_post(base, path, body, {**headers, **public})[0] == 200
    guarded = ForwardedOnlyFromProxy(django_app(), proxies=[PROXY_ADDRESS])
    with django_settings(**BEHIND_ONE_PROXY), serve_wsgi(guarded) as base:
        assert direct_post(base, path, body, {**headers, **public}) == (
            400,
            "Bad Request (400)",
        )


# --------------------------------------------------------------------------- #
# Body size, and a clean stop
# --------------------------------------------------------------------------- #


def form_of(size: int) -> bytes:
    return b"Body=" + b"x" * (size - 5)


def test_nginx_refuses_bodies_over_one_megabyte_by_default() -> None:
    with flask_behind_nginx(trust_nginx) as (proxy, _):
        at_limit = https_post(proxy, "/twilio/sms", form_of(1024 * 1024))
        over = https_post(proxy, "/twilio/sms", form_of(1024 * 1024 + 1))
        allowed = https_post(proxy, "/uploads/hook", form_of(2 * 1024 * 1024))
        log = proxy.error_log.read_text()
    assert at_limit[0] == 403  # reached the app (no signature: refused there)
    assert over == (413, "413 Request Entity Too Large")
    assert "client intended to send too large body: 1048577 bytes" in log
    assert allowed == (200, "received 2097152 bytes")


def test_nginx_stops_cleanly() -> None:
    holder: list[Proxy] = []
    with flask_behind_nginx() as (proxy, _):
        holder.append(proxy)
        port = proxy.port
    assert holder[0].returncode == 0  # SIGQUIT: graceful shutdown, exit 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
