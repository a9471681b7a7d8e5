"""Tests for snippets/webhook_design/ssrf_guard/.

No test opens a connection outside 127.0.0.0/8 or ::1: every test runs
inside `loopback_only`, which makes ``socket.connect`` to anything else
raise before a packet is sent, and fails the test if anything tried. Names
are answered by a stub resolver; the pinned sends that would leave loopback
go to a connector that records instead of connecting. Real HTTP hops use
loopback servers, with 127.0.0.1 allowed explicitly by the test's guard.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from snippets.support.webhook_design_ssrf import (
    PUBLIC,
    OutboundRefused,
    Recorder,
    RecordingConnector,
    StubResolver,
    loopback_only,
    stub_getaddrinfo,
)
from snippets.webhook_design.ssrf_guard import (
    BlockedURL,
    PinnedHTTPSConnection,
    Target,
    UrlGuard,
    forbidden_reason,
    send_webhook,
)
from snippets.webhook_design.ssrf_guard.broken import check_literal, naive_send
from snippets.webhook_design.ssrf_guard.demo import NAMES

BODY, HEADERS = b"{}", {"Content-Type": "application/json"}
TEST_ONLY = ["127.0.0.1/32"]  # the loopback servers of these tests
PINNED_LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture(autouse=True)
def no_connection_outside_loopback() -> Iterator[list[str]]:
    with loopback_only() as refused:
        yield refused
    assert refused == [], f"a test tried to connect to {refused}"


FORBIDDEN = [
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1",
    "fd00:ec2::254", "127.0.0.1", "127.8.9.10", "::1", "169.254.169.254",
    "169.254.0.1", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "240.0.0.1", "255.255.255.255", "100.64.0.1", "192.0.0.9", "192.0.2.1",
    "198.18.0.1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
    "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a00:1",
    "64:ff9b:1::1", "2002:a00:1::", "2002:808:808::", "2001:db8::1",
]  # fmt: skip


@pytest.mark.parametrize("text", FORBIDDEN)
def test_the_policy_refuses_every_internal_and_special_address(text: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", [PUBLIC, "8.8.8.8", "2606:4700::1111"])
def test_the_policy_allows_global_unicast(text: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1"])
def test_numeric_spellings_of_loopback_pass_the_literal_check(host: str) -> None:
    url = f"https://{host}/"
    check_literal(url)  # the hazard: "not an IP address", so not checked
    with pytest.raises(BlockedURL, match=r"= 127\.0\.0\.1: loopback"):
        UrlGuard(StubResolver({})).check(url)


def test_the_resolver_reads_numeric_spellings_as_loopback() -> None:
    """What urlopen would connect to: the C resolver, no packet sent."""
    for host in ("2130706433", "0x7f.1"):
        infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
        assert {info[4][0] for info in infos} == {"127.0.0.1"}


def test_every_resolved_address_is_checked() -> None:
    guard = UrlGuard(StubResolver(NAMES))
    assert str(guard.check("https://hooks.customer.example/x").address) == PUBLIC
    with pytest.raises(BlockedURL, match=r"-> 10\.0\.0\.5: private"):
        guard.check("https://split.customer.example/")
    with pytest.raises(BlockedURL, match=r"169\.254\.169\.254: link-local"):
        guard.check("https://metadata.customer.example/")


@pytest.mark.parametrize(
    ("url", "allow_http"),
    [
        ("http://hooks.customer.example/", False),
        ("ftp://hooks.customer.example/", True),
        ("file:///etc/passwd", True),
        ("https://user:pw@hooks.customer.example/", False),
        ("https:///no-host", False),
    ],
)
def test_schemes_credentials_and_hostless_urls_are_refused(
    url: str, allow_http: bool
) -> None:
    with pytest.raises(BlockedURL):
        UrlGuard(StubResolver(NAMES), allow_http=allow_http).check(url)


def test_loopback_is_allowed_only_when_the_test_says_so() -> None:
    with pytest.raises(BlockedURL, match="loopback"):
        UrlGuard(allow_http=True).check("http://127.0.0.1:8080/")
    allowed = UrlGuard(allow_http=True, allow=TEST_ONLY)
    assert str(allowed.check("http://127.0.0.1:8080/").address) == "127.0.0.1"
    with pytest.raises(BlockedURL, match="loopback"):  # /32: 127.0.0.2 is not
        allowed.check("http://127.0.0.2:8080/")


def test_localhost_through_the_system_resolver_is_refused() -> None:
    with pytest.raises(BlockedURL, match=r"localhost -> .*: loopback"):
        UrlGuard().check("https://localhost/")


def test_rebinding_reaches_the_internal_service_through_the_naive_check() -> None:
    with Recorder().running() as internal:
        host = "rebind.customer.example"
        dns = StubResolver({host: [[PUBLIC], ["127.0.0.1"]]})
        with stub_getaddrinfo(dns):
            status = naive_send(f"http://{host}:{internal.port}/hook", BODY, HEADERS)
    assert dns.calls == [host, host]  # checked the first answer, used the second
    assert status == 204
    assert internal.requests == [f"POST {host}:{internal.port}/hook"]


def test_the_pinned_send_connects_to_the_checked_address_only() -> None:
    host = "rebind.customer.example"
    dns = StubResolver({host: [[PUBLIC], ["127.0.0.1"]]})
    connector = RecordingConnector()
    guard = UrlGuard(dns, allow_http=True)
    with pytest.raises(OutboundRefused):
        send_webhook(f"http://{host}/hook", BODY, HEADERS, guard, connect=connector)
    assert dns.calls == [host]  # one lookup: nothing to rebind
    assert [str(t.address) for t in connector.targets] == [PUBLIC]
    assert connector.targets[0].host == host


def test_a_redirect_hop_is_checked_again() -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    guard = UrlGuard(allow_http=True, allow=TEST_ONLY)
    with Recorder(redirect_to=metadata).running() as hop:
        url = f"http://127.0.0.1:{hop.port}/hook"
        assert send_webhook(url, BODY, HEADERS, guard).status == 307  # not followed
        with pytest.raises(BlockedURL, match=r"169\.254\.169\.254: link-local"):
            send_webhook(url, BODY, HEADERS, guard, max_redirects=3)
    assert len(hop.requests) == 2


def test_an_allowed_redirect_is_followed_over_real_http() -> None:
    guard = UrlGuard(allow_http=True, allow=TEST_ONLY)
    with Recorder().running() as final:
        moved = f"http://127.0.0.1:{final.port}/new"
        with Recorder(redirect_to=moved).running() as first:
            url = f"http://127.0.0.1:{first.port}/old"
            sent = send_webhook(url, BODY, HEADERS, guard, max_redirects=1)
    assert (sent.status, sent.hops) == (204, [url, moved])
    assert [r.rsplit("/", 1)[1] for r in final.requests] == ["new"]


def test_https_sends_the_customer_host_as_sni_to_the_pinned_address() -> None:
    """The ClientHello goes to the checked address and names the host."""
    listener = socket.create_server(("127.0.0.1", 0))
    hello: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn:
            hello.append(conn.recv(4096))

    thread = threading.Thread(target=accept)
    thread.start()
    port = listener.getsockname()[1]
    target = Target("https", "hooks.customer.example", port, "/", PINNED_LOOPBACK)
    with pytest.raises((OSError, ConnectionError)):
        PinnedHTTPSConnection(target, timeout=5).connect()
    thread.join(timeout=5)
    listener.close()
    assert b"hooks.customer.example" in hello[0]


def test_the_tripwire_refuses_before_any_packet() -> None:
    with pytest.raises(OutboundRefused), loopback_only() as refused:
        socket.create_connection(("10.255.255.1", 9), timeout=1)
    assert refused == ["10.255.255.1"]


def _fixed_ranges() -> bool:
    """gh-113171 changed is_private/is_global in 3.11.10, 3.12.4 and 3.13.0."""
    v = sys.version_info
    return v >= (3, 13) or (3, 12, 4) <= v < (3, 13) or (3, 11, 10) <= v < (3, 12)


@pytest.mark.parametrize("text", ["2002:a00:1::", "64:ff9b:1::1"])
def test_a_range_that_changed_with_the_python_version(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert address.is_global is not _fixed_ranges()  # differs per version
    assert forbidden_reason(address) is not None  # the guard does not
