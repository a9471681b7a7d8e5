"""The cases the provider-signatures page shows.

``python -m snippets.webhook_design.provider_signatures.demo CASE``, with CASE
one of ``stripe``, ``github``, ``slack``, ``twilio`` (a correct delivery and
the common mistakes, over HTTP to a Flask receiver on loopback) and
``interop`` (our signers against the providers' verifiers and signers).
Nothing here contacts a provider.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlencode

import slack_sdk.version
import stripe
import twilio  # type: ignore[import-untyped]
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from snippets.support.cases import run_cases
from snippets.support.webhook_design_frameworks import post, serve_wsgi
from snippets.webhook_design.provider_signatures import (
    ProviderSecrets,
    create_receiver_app,
    github_signature_256,
    github_signature_sha1,
    slack_signature,
    stripe_signature_header,
    twilio_signature,
)
from snippets.webhook_design.provider_signatures.broken import create_broken_app

__all__ = ["SECRETS", "receivers"]

SECRETS = ProviderSecrets(  # fixed, made-up test values
    stripe_endpoint_secret="whsec_live_endpoint_0001",
    github_webhook_secret="github-hook-secret",
    slack_signing_secret="8f742231b10e8888abcd99yyyzzz85a5",
    twilio_auth_token="12345678901234567890123456789012",
    public_base_url="https://hooks.example.com",
)
STRIPE_TEST_MODE = "whsec_test_endpoint_0001"  # same URL, test mode
STRIPE_BODY = b'{\n  "id": "evt_1",\n  "object": "event",\n  "type": "invoice.paid"\n}'
GITHUB_BODY = b'{"action":"opened","number":7,"sender":{"login":"octocat"}}'
SLACK_BODY = b"command=%2Fdeploy&text=api+v2&user_id=U123&team_id=T123"
TWILIO_PARAMS = {"From": "+15550001111", "Body": "Hi", "MessageSid": "SM1"}
PORT = re.compile(r"127\.0\.0\.1:\d+")
STAMP = re.compile(r"\(\d{9,}\)")  # the header's t=, in an error message
FORM = "application/x-www-form-urlencoded"


@contextmanager
def receivers() -> Iterator[dict[str, str]]:
    """Serve the receiver and the broken receiver; yield their base URLs."""
    with ExitStack() as stack:
        good = stack.enter_context(serve_wsgi(create_receiver_app(SECRETS)))
        bad = stack.enter_context(serve_wsgi(create_broken_app(SECRETS)))
        yield {"good": good, "bad": bad}


def row(label: str, answer: tuple[int, str]) -> str:
    status, text = answer
    text = PORT.sub("127.0.0.1:<port>", STAMP.sub("(<t>)", text))
    return f"{label:<40} {status} {text}"


# --8<-- [start:stripe]
def show_stripe() -> list[str]:
    """A correct Stripe delivery, then each common mistake."""
    now, live = int(time.time()), SECRETS.stripe_endpoint_secret
    cases = [  # label, receiver, signing secret, timestamp
        ("correct delivery", "good", live, now),
        ("body re-serialised before verifying", "bad", live, now),
        ("signed with the test-mode secret", "good", STRIPE_TEST_MODE, now),
        ("timestamp 301 s old", "good", live, now - 301),
        ("timestamp 1 hour ahead", "good", live, now + 3600),
    ]
    lines = [f"stripe {stripe.VERSION}, Webhook.construct_event"]
    with receivers() as bases:
        for label, which, key, stamp in cases:
            header = stripe_signature_header(key, stamp, STRIPE_BODY)
            url = f"{bases[which]}/stripe"
            answer = post(url, STRIPE_BODY, {"Stripe-Signature": header})
            lines.append(row(label, answer))
    return lines


# --8<-- [end:stripe]


def show_github() -> list[str]:
    """A correct GitHub delivery, then each common mistake."""
    secret = SECRETS.github_webhook_secret
    correct = {"X-Hub-Signature-256": github_signature_256(secret, GITHUB_BODY)}
    cases = [  # label, receiver, headers
        ("correct delivery", "good", correct),
        ("body re-serialised before verifying", "bad", correct),
        (
            "signed with another hook's secret",
            "good",
            {"X-Hub-Signature-256": github_signature_256("other", GITHUB_BODY)},
        ),
        (
            "only the legacy sha1 header",
            "good",
            {"X-Hub-Signature": github_signature_sha1(secret, GITHUB_BODY)},
        ),
    ]
    lines = ["GitHub (no official Python verifier), verify_github"]
    with receivers() as bases:
        for label, which, headers in cases:
            sent = headers | {"X-GitHub-Event": "pull_request"}
            lines.append(row(label, post(f"{bases[which]}/github", GITHUB_BODY, sent)))
    return lines


def show_slack() -> list[str]:
    """A correct Slack request, then each common mistake."""
    now, secret = int(time.time()), SECRETS.slack_signing_secret
    cases = [  # label, signing secret, timestamp
        ("correct request", secret, now),
        ("signed with another app's secret", "another-apps-signing-secret", now),
        ("timestamp 301 s old", secret, now - 301),
        ("timestamp 310 s ahead", secret, now + 310),  # now is rounded down
    ]
    lines = [f"slack_sdk {slack_sdk.version.__version__}, SignatureVerifier"]
    with receivers() as bases:
        good = bases["good"]
        for label, key, stamp in cases:
            headers = {
                "Content-Type": FORM,
                "X-Slack-Request-Timestamp": str(stamp),
                "X-Slack-Signature": slack_signature(key, stamp, SLACK_BODY),
            }
            lines.append(row(label, post(f"{good}/slack", SLACK_BODY, headers)))
    return lines


# --8<-- [start:twilio]
def show_twilio() -> list[str]:
    """Twilio signs the URL it called: every way the receiver's URL differs."""
    called = f"{SECRETS.public_base_url}/twilio/sms?tenant=7"
    token = SECRETS.twilio_auth_token
    signature = twilio_signature(token, called, TWILIO_PARAMS)
    validator = RequestValidator(token)
    lines = [f"twilio {twilio.__version__}, RequestValidator.validate"]
    with receivers() as bases:
        for label, which in [("public URL configured", "good"), ("request.url", "bad")]:
            headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
            body = urlencode(TWILIO_PARAMS).encode()
            url = f"{bases[which]}/twilio/sms?tenant=7"
            lines.append(row(f"over HTTP, {label}", post(url, body, headers)))
    urls = [  # what a receiver might reconstruct, and the token it uses
        ("the URL Twilio called", called, token),
        ("http instead of https", called.replace("https:", "http:"), token),
        ("default port added (:443)", called.replace(".com/", ".com:443/"), token),
        ("proxy port added (:8443)", called.replace(".com/", ".com:8443/"), token),
        ("query string dropped", called.split("?")[0], token),
        ("the auth token before rotation", called, "f" * 32),
    ]
    for label, url, key in urls:
        valid = RequestValidator(key).validate(url, TWILIO_PARAMS, signature)
        lines.append(f"{'validate(): ' + label:<40} {valid}")
    on_port = called.replace(".com/", ".com:8443/")  # Twilio called port 8443
    signed_on_port = twilio_signature(token, on_port, TWILIO_PARAMS)
    valid = validator.validate(called, TWILIO_PARAMS, signed_on_port)
    lines.append(f"{'validate(): :8443 called, port dropped':<40} {valid}")
    return lines


# --8<-- [end:twilio]


def show_interop() -> list[str]:
    """Our signers against each provider's own verifier and signer."""
    now, body = int(time.time()), STRIPE_BODY
    key = SECRETS.stripe_endpoint_secret
    ours = stripe_signature_header(key, now, body)
    theirs = stripe.WebhookSignature.generate_signature_header(body.decode(), key, now)
    verified = stripe.WebhookSignature.verify_header(body, ours, key, 300)
    slack_key = SECRETS.slack_signing_secret
    slack = SignatureVerifier(slack_key)
    slack_ours = slack_signature(slack_key, now, SLACK_BODY)
    slack_ok = slack.is_valid(SLACK_BODY, str(now), slack_ours)
    slack_theirs = slack.generate_signature(timestamp=str(now), body=SLACK_BODY)
    token, url = SECRETS.twilio_auth_token, f"{SECRETS.public_base_url}/twilio/sms"
    twilio_ours = twilio_signature(token, url, TWILIO_PARAMS)
    validator = RequestValidator(token)
    twilio_ok = validator.validate(url, TWILIO_PARAMS, twilio_ours)
    twilio_theirs = validator.compute_signature(url, TWILIO_PARAMS)
    # GitHub's documented example: secret and payload from its docs page.
    github = github_signature_256("It's a Secret to Everybody", b"Hello, World!")
    documented = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    return [
        f"stripe   ours -> verify_header: {verified}; same header: {ours == theirs}",
        f"slack    ours -> is_valid: {slack_ok}; same signature: "
        f"{slack_ours == slack_theirs}",
        f"twilio   ours -> validate: {twilio_ok}; same signature: "
        f"{twilio_ours == twilio_theirs}",
        f"github   docs example reproduced: {github == 'sha256=' + documented}",
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "stripe": show_stripe,
                "github": show_github,
                "slack": show_slack,
                "twilio": show_twilio,
                "interop": show_interop,
            }
        )
    )
