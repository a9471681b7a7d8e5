"""Tests for snippets/lazy_loading/boto3_clients_from_threads.py.

No network: dummy credentials, no config files, no instance metadata, and
clients created with an endpoint on 127.0.0.1 that is never called. Threads
are released together by a barrier, so the cold start races on every run;
builds are counted by wrapping boto3's and botocore's constructors.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3

from snippets.lazy_loading.boto3_clients_from_threads import (
    ROUNDS,
    THREADS,
    SharedClients,
    make_clients,
    run_rounds,
    thread_client,
)
from snippets.support.lazy_loading_boto3 import (
    LOCAL_ENDPOINT,
    counting,
    offline_aws,
    together,
)


def test_default_session_is_built_more_than_once_per_cold_start() -> None:
    """See it break: boto3.client() from 8 threads builds the default session
    several times, and the credential resolver more than once."""
    sessions, resolvers, errors = run_rounds("default")
    assert sessions > ROUNDS
    assert resolvers > ROUNDS
    # botocore 1.31.16 (PR #2985) stopped the KeyError: 'credential_provider'
    # crash; the duplicate builds remain.
    assert errors == 0


def test_racing_threads_keep_clients_of_different_sessions() -> None:
    """The racers' clients do not all come from the session boto3 keeps."""
    with offline_aws():
        race = together(
            THREADS, lambda: boto3.client("sqs", endpoint_url=LOCAL_ENDPOINT)
        )
        kept = boto3.DEFAULT_SESSION
        assert kept is not None
        credentials = {
            id(client._request_signer._credentials) for client in race.results
        }
    assert len(race.results) == THREADS
    assert len(credentials) > 1


def test_one_shared_session_builds_its_credential_resolver_more_than_once() -> None:
    sessions, resolvers, errors = run_rounds("shared")
    assert sessions == ROUNDS
    assert resolvers > ROUNDS
    assert errors == 0


def test_a_session_per_thread_builds_each_part_once_per_thread() -> None:
    assert run_rounds("per_thread") == (ROUNDS * THREADS, ROUNDS * THREADS, 0)


def test_clients_created_up_front_build_once() -> None:
    assert run_rounds("up_front") == (ROUNDS, ROUNDS, 0)


def test_shared_clients_build_once_and_hand_out_one_client() -> None:
    with offline_aws(), counting() as built:
        clients = SharedClients(endpoint_url=LOCAL_ENDPOINT)
        race = together(THREADS, lambda: clients.get("sqs"))
    assert (built["session"], built["credential_resolver"]) == (1, 1)
    assert len({id(client) for client in race.results}) == 1
    assert not race.errors


def test_shared_clients_one_client_per_service_from_one_session() -> None:
    with offline_aws(), counting() as built:
        clients = SharedClients(endpoint_url=LOCAL_ENDPOINT)
        services = ["sqs", "s3"] * (THREADS // 2)
        index = iter(range(THREADS))
        lock = threading.Lock()

        def pick() -> Any:
            with lock:
                n = next(index)
            return clients.get(services[n])

        race = together(THREADS, pick)
    assert built["session"] == 1
    assert len({id(client) for client in race.results}) == 2
    assert {client.meta.service_model.service_name for client in race.results} == {
        "sqs",
        "s3",
    }


def test_thread_client_reuses_the_threads_client() -> None:
    with offline_aws():
        first = thread_client("sqs", endpoint_url=LOCAL_ENDPOINT)
        assert thread_client("sqs", endpoint_url=LOCAL_ENDPOINT) is first
        other: list[Any] = []
        worker = threading.Thread(
            target=lambda: other.append(
                thread_client("sqs", endpoint_url=LOCAL_ENDPOINT)
            )
        )
        worker.start()
        worker.join(timeout=30)
    assert other and other[0] is not first


def test_clients_point_at_loopback_only() -> None:
    with offline_aws():
        clients = make_clients(["sqs", "s3"], endpoint_url=LOCAL_ENDPOINT)
    for client in clients.values():
        assert client.meta.endpoint_url == LOCAL_ENDPOINT
