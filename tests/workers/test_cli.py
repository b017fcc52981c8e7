"""`geomelt source ...` and `geomelt ingest` in-process with click's runner."""

from __future__ import annotations

from click.testing import CliRunner

from geomelt.cli import main

from .conftest import Services


def test_source_commands_round_trip(database_url: str, services: Services) -> None:
    runner = CliRunner()
    # The test STAC API listens on loopback.
    env = {"GEOMELT_DATABASE_URL": database_url, "GEOMELT_ALLOW_PRIVATE_SOURCES": "1"}
    added = runner.invoke(
        main,
        [
            "source",
            "add",
            "geo",
            "--stac-api",
            services.stac_url,
            "--collection",
            services.collection,
            "--bbox",
            "-180,-90,180,90",
            "--every",
            "15m",
            "--chip-size",
            "256",
        ],
        env=env,
    )
    assert added.exit_code == 0, added.output
    again = runner.invoke(
        main,
        ["source", "add", "geo", "--stac-api", services.stac_url, "--collection", "x"],
        env=env,
    )
    assert again.exit_code == 2
    assert "exists already" in again.output
    listed = runner.invoke(main, ["source", "list"], env=env)
    assert "geo\t" in listed.output
    assert "every 900s" in listed.output
    status = runner.invoke(main, ["source", "status", "geo"], env=env)
    assert "last poll: never" in status.output
    missing = runner.invoke(main, ["source", "status", "nope"], env=env)
    assert missing.exit_code == 2
    assert "known sources: geo" in missing.output
    removed = runner.invoke(main, ["source", "remove", "geo"], env=env)
    assert removed.exit_code == 0
    assert "removed with 0 scenes" in removed.output


def test_ingest_once_reports_chips_and_failures(database_url: str, services: Services) -> None:
    runner = CliRunner()
    # The test STAC API listens on loopback.
    env = {"GEOMELT_DATABASE_URL": database_url, "GEOMELT_ALLOW_PRIVATE_SOURCES": "1"}
    fast = ["--chip-size", "256", "--beams", "1", "--caption-max-len", "4"]
    good = runner.invoke(
        main,
        ["ingest", "--stac-api", services.stac_url, "--collection", services.collection, *fast],
        env=env,
    )
    assert good.exit_code == 0, good.output
    assert "5 scenes done" in good.output
    assert "0 scenes failed" in good.output
    bad = runner.invoke(
        main,
        [
            "ingest",
            "--stac-api",
            services.stac_url,
            "--collection",
            services.fault_collection,
            "--retry-wait",
            "0",
            "--max-attempts",
            "2",
            *fast,
        ],
        env=env,
    )
    assert bad.exit_code == 5
    assert "6 scenes failed" in bad.output
    assert "failed no-rgb: item 'no-rgb': no RGB, pan or false-colour assets found" in bad.output
    status = runner.invoke(
        main,
        ["source", "status", f"{services.fault_collection}@" + services.stac_url.split("://")[1]],
        env=env,
    )
    assert "scenes: failed 6" in status.output
    assert "after 2 attempt(s)" in status.output
