"""How the test run is split between pytest-xdist workers (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import unit_order, xdist_scope


def test_a_pattern_is_one_unit_with_its_output_checks() -> None:
    assert (
        xdist_scope("tests/message_queues/test_outbox.py::test_relay")
        == xdist_scope("tests/message_queues/test_outbox.py::test_crash[x]")
        == xdist_scope(
            "tests/test_outputs.py::test_output_is_what_ran[message_queues/outbox.main.txt]"
        )
        == "message_queues/outbox"
    )


def test_site_modules_are_units_and_the_checks_of_every_page_one_per_part() -> None:
    assert xdist_scope("tests/site/test_links.py::test_a") == "tests/site/test_links.py"
    assert xdist_scope("tests/site/test_links.py::test_b[x]") == (
        "tests/site/test_links.py"
    )
    every_page = {
        "tests/site/test_accessibility.py::"
        "test_every_page_has_no_serious_violation[dark-message-queues]",
        "tests/site/test_accessibility.py::"
        "test_every_page_has_no_serious_violation[light-message-queues]",
        "tests/site/test_browser.py::"
        "test_every_page_loads_cleanly_and_only_from_the_site[message-queues]",
        "tests/site/test_diagrams.py::"
        "test_diagram_text_is_at_least_body_size_on_a_desktop[message-queues]",
    }
    assert {xdist_scope(test) for test in every_page} == {
        "tests/site/pages:message-queues"
    }
    assert xdist_scope(
        "tests/site/test_diagrams.py::test_diagram_text_is_at_least_body_size_on_a_phone"
    ) == ("tests/site/test_diagrams.py")


def test_the_book_goes_first_then_site_and_patterns_take_turns() -> None:
    units = {
        "lazy_loading/small": ["tests/lazy_loading/test_small.py::test_a"],
        "message_queues/large": [
            f"tests/message_queues/test_large.py::test_{n}" for n in range(3)
        ],
        "tests/site/test_links.py": ["tests/site/test_links.py::test_a"],
        "tests/site/test_pages.py": [
            "tests/site/test_pages.py::test_a",
            "tests/site/test_pages.py::test_b",
        ],
        "tests/site/test_pdf.py": ["tests/site/test_pdf.py::test_a"],
        "webhook_design/medium": [
            f"tests/webhook_design/test_medium.py::test_{n}" for n in range(2)
        ],
    }
    assert unit_order(units) == [
        "tests/site/test_pdf.py",
        "tests/site/test_pages.py",
        "message_queues/large",
        "tests/site/test_links.py",
        "webhook_design/medium",
        "lazy_loading/small",
    ]
