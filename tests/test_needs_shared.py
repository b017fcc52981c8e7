"""The `needs_shared` marker (tests/conftest.py): absent data skips the test with the path."""

from __future__ import annotations

import pytest


def test_a_test_needing_absent_data_skips_with_a_one_line_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import pytest_collection_modifyitems  # noqa: F401")
    pytester.makeini("[pytest]\nmarkers =\n    needs_shared(path): reads ../shared/data/<path>\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs_shared("captions", "no-such-dataset")
        def test_needs_absent_data():
            raise AssertionError("must not run")

        def test_needs_nothing():
            pass
        """
    )
    result = pytester.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.re_match_lines(
        [r"SKIPPED .* needs /\S+/shared/data/captions/no-such-dataset \(absent from this clone\)"]
    )
