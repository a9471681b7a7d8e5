"""Error messages on pages are messages the tests recorded (tools/errors.py).

The records, snippets/<topic>/errors/<pattern>.yml, are written by the
``error_record`` fixture (tests/conftest.py) in the see-it-break tests; here
they are checked against the pages that quote them, the topics, the search
queries and the tests that write them.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT
from tools import errors
from tools.page_checks import TOPICS, heading_ids

RECORDS = errors.records()
QUERIES = ROOT / "tests" / "site" / "search_queries.yml"


def test_every_quoted_error_is_a_recorded_one() -> None:
    problems = errors.unrecorded_quotes()
    assert not problems, (
        f"{len(problems)} quoted errors that no test recorded:\n"
        + "\n".join(problems)
        + "\n\n"
        + errors.HOW_TO_RECORD
    )


def test_every_topic_has_a_recorded_error() -> None:
    topics = {record.page.split("/")[0] for record in RECORDS}
    missing = [topic for topic in TOPICS if topic not in topics]
    assert not missing, f"topics without a recorded error: {missing}"


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.anchor)
def test_record_points_at_a_section_and_a_test(record: errors.Record) -> None:
    where = f"{record.file.relative_to(ROOT)} [{record.id}]"
    page = ROOT / "docs" / record.page
    assert page.is_file(), f"{where}: no page docs/{record.page}"
    ids = {i for _, _, i in heading_ids(page.read_text().splitlines())}
    assert record.section in ids, (
        f"{where}: docs/{record.page} has no #{record.section}"
    )
    path, _, function = record.test.partition("::")
    test = ROOT / path
    assert test.is_file() and re.search(
        rf"^def {re.escape(function)}\(", test.read_text(), re.M
    ), f"{where}: no test {record.test}; delete the record if the test is gone"
    assert record.message == errors.normalise(record.message), (
        f"{where}: the message is not normalised"
    )


def test_record_anchors_are_unique() -> None:
    anchors = [record.anchor for record in RECORDS]
    assert len(set(anchors)) == len(anchors)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.anchor)
def test_record_is_a_search_query_with_concrete_values(record: errors.Record) -> None:
    """Each message, pasted as a reader would (its first line, real numbers),
    is a query in tests/site/search_queries.yml for the explaining page."""
    page = record.page.removesuffix(".md") + "/"
    table = yaml.safe_load(QUERIES.read_text())
    pasted = [
        entry["query"]
        for entry in table["queries"]
        if entry["page"] == page
        and errors.is_instance(entry["query"], record.first_line)
    ]
    assert pasted, (
        f"no query in {QUERIES.relative_to(ROOT)} for page {page} is the first line "
        f"of {record.anchor} with concrete values: {record.first_line!r}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Loading chunk 954 failed.", "Loading chunk <n> failed."),
        (
            "http://127.0.0.1:41235/assets/settings-Bx_3a9Zq.js",
            "http://<host>/assets/settings-<hash>.js",
        ),
        ("No such file: '/tmp/pytest-3/a.h'", "No such file: '<path>'"),
        ("_ModuleLock('m') at 140234234", "_ModuleLock('m') at <n>"),
        ("id 3f2a1b9c-0d4e-4f5a-8b6c-7d8e9f0a1b2c", "id <uuid>"),
        ("[2026-12-07 04:40:01 +0000] [42] X (pid:43)", "[<time>] [<n>] X (pid:<n>)"),
        ("at 0x7f3a2b1c", "at <addr>"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert errors.normalise(text) == expected
    assert errors.normalise(expected) == expected


def test_a_quote_matches_with_an_ellipsis_and_other_numbers() -> None:
    message = (
        "_frozen_importlib._DeadlockError: deadlock detected by "
        "_ModuleLock('<module>') at <n>"
    )
    assert errors.matches(
        "_DeadlockError: deadlock detected by _ModuleLock('…')", message
    )
    assert not errors.matches("_DeadlockError: livelock", message)
    found = list(
        errors.quotes("Text `KeyError: 'csv'` and `KeyError`.\n```text\n`X: y`\n```\n")
    )
    assert found == [(1, "KeyError: 'csv'")]
