"""The chipping options of `geomelt ingest` and `geomelt worker`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geomelt.cli import main


@pytest.mark.parametrize("command", ["ingest", "worker"])
def test_min_valid_fraction_is_an_option_and_out_of_range_values_are_refused(
    command: str,
) -> None:
    runner = CliRunner()
    assert "--min-valid-fraction" in runner.invoke(main, [command, "--help"]).output
    args = [command, "--min-valid-fraction", "1.5"]
    if command == "ingest":
        args += ["--stac-api", "http://127.0.0.1:1/", "--collection", "c"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "--min-valid-fraction" in result.output
    assert "1.5" in result.output
