import subprocess


def test_mosquitto_refuses_anonymous_and_accepts_cloud(mosquitto):
    anon = subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-t", "sc/v1/x/event", "-m", "{}", "-q", "1"],
        capture_output=True,
        timeout=10,
    )
    assert anon.returncode != 0
    ok = subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mosquitto.port),
            "-u",
            "cloud",
            "-P",
            mosquitto.users["cloud"],
            "-t",
            "sc/v1/x/event",
            "-m",
            "{}",
            "-q",
            "1",
        ],
        capture_output=True,
        timeout=10,
    )
    assert ok.returncode == 0, ok.stderr


def test_influxdb_answers_ping(influxdb):
    import urllib.request

    with urllib.request.urlopen(f"{influxdb.url}/ping") as resp:
        assert resp.status == 204


async def test_a_postgresql_database_comes_back_empty_with_ids_from_one(postgresql):
    """The next test gets a reused database as if new: no rows, ids from 1, no connection."""
    from cloud.db.database import Database
    from tests.db_backends import PgDatabases

    databases = PgDatabases(postgresql)
    name = databases.take()
    db = await Database.open(postgresql.url(name))
    insert = "INSERT INTO audit (at, actor, action, detail) VALUES (1, 'a', 'b', '') RETURNING id"
    assert await db.write(lambda c: c.execute(insert).fetchone()[0]) == 1
    await db.write(lambda c: c.execute(insert).fetchone()[0])
    # a cloud left open, mid-transaction even (holding the writer lock): its connections end
    await db.run(lambda c: c.execute("BEGIN"))
    databases.give_back(name)
    assert databases.take() == name
    again = await Database.open(postgresql.url(name))
    try:
        assert await again.fetch_value("SELECT count(*) FROM audit") == 0
        assert await again.write(lambda c: c.execute(insert).fetchone()[0]) == 1
        others = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'sc-cloud'"
        )
        assert await again.fetch_value(others) == 3  # its own writer and two readers only
    finally:
        await again.close()
        await db.close()
        databases.give_back(name)


def test_a_postgresql_database_whose_schema_a_test_changed_is_not_used_again(postgresql):
    import psycopg

    from tests.db_backends import PgDatabases

    databases = PgDatabases(postgresql)
    name = databases.take()
    with psycopg.connect(postgresql.url(name), autocommit=True) as conn:
        conn.execute("ALTER TABLE audit ADD COLUMN extra TEXT")
    databases.give_back(name)
    assert databases.take() != name
    with psycopg.connect(postgresql.url(), autocommit=True) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (name,))
        assert left.fetchall() == []
