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
