"""Tests for snippets/webhook_design/provider_signatures/.

Every delivery is a real HTTP POST to a Flask receiver on loopback (wsgiref,
started once for the module) that verifies with the provider's own package
from PyPI: stripe 16.1.0, slack_sdk 3.47.0, twilio 9.13.0. GitHub has no
official Python verifier; its check is ours, held to GitHub's documented
example. No provider is contacted: the deliveries are signed here.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import slack_sdk.version
import stripe
import twilio  # type: ignore[import-untyped]
from slack_sdk.signature import Clock, SignatureVerifier
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from snippets.support.webhook_design_frameworks import post
from snippets.webhook_design.provider_signatures import (
    SignatureMismatch,
    github_signature_256,
    github_signature_sha1,
    slack_signature,
    stripe_signature_header,
    twilio_signature,
    verify_github,
)
from snippets.webhook_design.provider_signatures.demo import (
    GITHUB_BODY,
    SECRETS,
    SLACK_BODY,
    STRIPE_BODY,
    STRIPE_TEST_MODE,
    TWILIO_PARAMS,
    receivers,
)

MISMATCH = "No signatures found matching the expected signature for payload"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def bases() -> Iterator[dict[str, str]]:
    print(
        f"\nstripe {stripe.VERSION}, slack_sdk {slack_sdk.version.__version__}, "
        f"twilio {twilio.__version__}, Python {platform.python_version()}"
    )
    with receivers() as served:
        yield served


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


# Stripe ---------------------------------------------------------------------


def send_stripe(
    base: str, secret: str, stamp: int, body: bytes = STRIPE_BODY
) -> tuple[int, str]:
    header = stripe_signature_header(secret, stamp, body)
    answer = post(f"{base}/stripe", body, {"Stripe-Signature": header})
    print(f"stripe t={stamp}: {answer}")
    return answer


def test_stripe_correct_delivery_verifies(bases: dict[str, str]) -> None:
    live = SECRETS.stripe_endpoint_secret
    answer = send_stripe(bases["good"], live, int(time.time()))
    assert answer == (200, "accepted invoice.paid")


def test_stripe_reserialised_body_fails(bases: dict[str, str]) -> None:
    live = SECRETS.stripe_endpoint_secret
    answer = send_stripe(bases["bad"], live, int(time.time()))
    assert answer == (400, f"SignatureVerificationError: {MISMATCH}")


def test_stripe_test_mode_secret_fails_on_the_live_endpoint(
    bases: dict[str, str],
) -> None:
    answer = send_stripe(bases["good"], STRIPE_TEST_MODE, int(time.time()))
    assert answer == (400, f"SignatureVerificationError: {MISMATCH}")


def test_stripe_tolerance_is_300_seconds_into_the_past_only(
    bases: dict[str, str],
) -> None:
    assert stripe.Webhook.DEFAULT_TOLERANCE == 300
    live, now = SECRETS.stripe_endpoint_secret, int(time.time())
    assert send_stripe(bases["good"], live, now - 290)[0] == 200
    stale = now - 301
    assert send_stripe(bases["good"], live, stale) == (
        400,
        f"SignatureVerificationError: Timestamp outside the tolerance zone ({stale})",
    )
    assert send_stripe(bases["good"], live, now + 3600)[0] == 200  # not checked


def test_stripe_verify_header_without_tolerance_skips_the_timestamp() -> None:
    live = SECRETS.stripe_endpoint_secret
    old = int(time.time()) - 86_400
    header = stripe_signature_header(live, old, STRIPE_BODY)
    assert stripe.WebhookSignature.verify_header(STRIPE_BODY, header, live) is True
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance zone"):
        stripe.WebhookSignature.verify_header(STRIPE_BODY, header, live, 300)


def test_stripe_interop_both_ways() -> None:
    live, now = SECRETS.stripe_endpoint_secret, int(time.time())
    ours = stripe_signature_header(live, now, STRIPE_BODY)
    assert stripe.WebhookSignature.verify_header(STRIPE_BODY, ours, live, 300)
    theirs = stripe.WebhookSignature.generate_signature_header(
        STRIPE_BODY.decode(), live, now
    )
    assert theirs == ours


# GitHub ---------------------------------------------------------------------


def send_github(base: str, headers: dict[str, str]) -> tuple[int, str]:
    sent = headers | {"X-GitHub-Event": "pull_request"}
    return post(f"{base}/github", GITHUB_BODY, sent)


def test_github_documented_example() -> None:
    # "Testing the webhook payload validation" in GitHub's docs.
    assert github_signature_256("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_github_correct_delivery_and_mistakes(bases: dict[str, str]) -> None:
    secret = SECRETS.github_webhook_secret
    good = {"X-Hub-Signature-256": github_signature_256(secret, GITHUB_BODY)}
    assert send_github(bases["good"], good) == (200, "accepted pull_request")
    mismatch = (401, "X-Hub-Signature-256 does not match")
    assert send_github(bases["bad"], good) == mismatch
    other = {"X-Hub-Signature-256": github_signature_256("other", GITHUB_BODY)}
    assert send_github(bases["good"], other)[0] == 401
    legacy = {"X-Hub-Signature": github_signature_sha1(secret, GITHUB_BODY)}
    assert send_github(bases["good"], legacy) == (
        401,
        "X-Hub-Signature-256 header is missing",
    )


def test_github_sha1_header_is_a_different_value() -> None:
    secret = SECRETS.github_webhook_secret
    sha1 = github_signature_sha1(secret, GITHUB_BODY)
    assert sha1.startswith("sha1=") and len(sha1) == 5 + 40
    with pytest.raises(SignatureMismatch):
        verify_github(secret, GITHUB_BODY, {"X-Hub-Signature-256": sha1})


# Slack ----------------------------------------------------------------------


def send_slack(base: str, secret: str, stamp: int) -> tuple[int, str]:
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": slack_signature(secret, stamp, SLACK_BODY),
    }
    return post(f"{base}/slack", SLACK_BODY, headers)


def test_slack_correct_request_and_mistakes(bases: dict[str, str]) -> None:
    secret, now = SECRETS.slack_signing_secret, int(time.time())
    assert send_slack(bases["good"], secret, now) == (200, "accepted /deploy")
    refused = (401, "is_valid_request returned False")
    assert send_slack(bases["good"], "another-apps-secret", now) == refused
    assert send_slack(bases["good"], secret, now - 301) == refused
    # now + 301 may lie 300.x s ahead: int(time.time()) rounds down.
    assert send_slack(bases["good"], secret, now + 310) == refused


def test_slack_window_is_five_minutes_both_ways() -> None:
    secret, stamp = SECRETS.slack_signing_secret, 1_700_000_000
    signature = slack_signature(secret, stamp, SLACK_BODY)
    for offset, valid in [(-300, True), (300, True), (-301, False), (301, False)]:
        verifier = SignatureVerifier(secret, FixedClock(stamp + offset))
        assert verifier.is_valid(SLACK_BODY, str(stamp), signature) is valid


def test_slack_interop_both_ways() -> None:
    secret, now = SECRETS.slack_signing_secret, int(time.time())
    verifier = SignatureVerifier(secret)
    ours = slack_signature(secret, now, SLACK_BODY)
    assert verifier.is_valid(SLACK_BODY, str(now), ours)
    assert verifier.generate_signature(timestamp=str(now), body=SLACK_BODY) == ours


# Twilio ---------------------------------------------------------------------

CALLED = f"{SECRETS.public_base_url}/twilio/sms?tenant=7"


def test_twilio_over_http(bases: dict[str, str]) -> None:
    token = SECRETS.twilio_auth_token
    headers = {
        "Content-Type": FORM,
        "X-Twilio-Signature": twilio_signature(token, CALLED, TWILIO_PARAMS),
    }
    body = urlencode(TWILIO_PARAMS).encode()
    good = post(f"{bases['good']}/twilio/sms?tenant=7", body, headers)
    assert good == (200, "accepted SM1")
    status, text = post(f"{bases['bad']}/twilio/sms?tenant=7", body, headers)
    print(f"request.url: {status} {text}")
    assert status == 403 and "http://127.0.0.1:" in text


@pytest.mark.parametrize(
    ("received", "valid"),
    [
        (CALLED, True),
        (CALLED.replace("https:", "http:"), False),
        (CALLED.replace(".com/", ".com:443/"), True),
        (CALLED.replace(".com/", ".com:8443/"), True),  # validate() drops ports
        (CALLED.split("?")[0], False),
        (CALLED + "&x=1", False),
    ],
)
def test_twilio_url_the_receiver_reconstructs(received: str, valid: bool) -> None:
    token = SECRETS.twilio_auth_token
    signature = twilio_signature(token, CALLED, TWILIO_PARAMS)
    assert RequestValidator(token).validate(received, TWILIO_PARAMS, signature) is valid


def test_twilio_port_twilio_called_must_be_kept() -> None:
    token = SECRETS.twilio_auth_token
    on_port = CALLED.replace(".com/", ".com:8443/")
    signature = twilio_signature(token, on_port, TWILIO_PARAMS)
    validator = RequestValidator(token)
    assert validator.validate(on_port, TWILIO_PARAMS, signature) is True
    assert validator.validate(CALLED, TWILIO_PARAMS, signature) is False


def test_twilio_wrong_token_and_changed_param_fail() -> None:
    token = SECRETS.twilio_auth_token
    signature = twilio_signature(token, CALLED, TWILIO_PARAMS)
    assert not RequestValidator("f" * 32).validate(CALLED, TWILIO_PARAMS, signature)
    changed = TWILIO_PARAMS | {"Body": "Hi!"}
    assert not RequestValidator(token).validate(CALLED, changed, signature)


def test_twilio_interop_both_ways() -> None:
    token = SECRETS.twilio_auth_token
    validator = RequestValidator(token)
    ours = twilio_signature(token, CALLED, TWILIO_PARAMS)
    assert validator.validate(CALLED, TWILIO_PARAMS, ours)
    assert validator.compute_signature(CALLED, TWILIO_PARAMS) == ours
