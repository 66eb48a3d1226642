"""Two real `llmgw serve` processes writing to one PostgreSQL: one spend for the fleet, one log for every reader,
no row lost across a database restart mid-load, and a database that is not there at start-up is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app
from tests.e2e.conftest import serving_together, start_serve, stop_all, write_profile
from tests.postgres.conftest import PASSWORD_ENV, PostgresServer, free_port, wait_for

pytestmark = pytest.mark.e2e


def profile_data(url: str, folder: Path) -> dict[str, Any]:
    return {
        "state": {"url": url, "password": f"env:{PASSWORD_ENV}", "dir": str(folder)},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/mock-1"]}},
        "prices": {"mock/mock-1": {"input": 3000.0, "output": 7000.0}},
    }


def write(tmp_path: Path, name: str, url: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return write_profile(folder / "profile.toml", profile_data(url, folder / "state"))


def chat(client: httpx.Client, base: str, text: str) -> httpx.Response:
    return client.post(f"{base}/v1/chat/completions", timeout=30,
                       json={"model": "fast", "messages": [{"role": "user", "content": text}]})


def metric(client: httpx.Client, base: str, name: str) -> float:
    for line in client.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def history(base: str, size: int) -> list[dict[str, Any]]:
    """The first ``size`` records of ``GET /admin/events?history=N`` (what `llmgw tail --history` shows)."""
    records: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{base}/admin/events?history={size}", timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                records.append(json.loads(line[5:]))
                if len(records) == size:
                    break
    return records


def test_two_instances_share_one_log_and_one_spend(tmp_path: Path, pg_url: str) -> None:
    env = {PASSWORD_ENV: os.environ[PASSWORD_ENV]}
    profiles = [write(tmp_path, "a", pg_url), write(tmp_path, "b", pg_url)]
    costs: dict[str, float] = {}
    ids: set[str] = set()
    with serving_together([(p, p.parent / "unused.db", env) for p in profiles]) as servers:
        wait_for(lambda: all("request log: " + pg_url in "".join(s.output) for s in servers))
        with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
            sends = [(servers[i % 2].url, f"hello {i}") for i in range(60)]
            answers = list(pool.map(lambda s: (s[0], chat(client, *s)), sends))
            for base, answer in answers:
                assert answer.status_code == 200, answer.text
                ids.add(answer.headers["x-llmgw-request-id"])
                costs[base] = costs.get(base, 0.0) + float(answer.headers["x-llmgw-cost-usd"])
            wait_for(lambda: all(metric(client, s.url, "llmgw_log_backlog") == 0 for s in servers))
        # /admin/events history on one instance reads the shared log: it has the other's requests too
        seen = {r["id"] for r in history(servers[0].url, 60)}
        assert seen == ids
    assert len(ids) == 60 and len(costs) == 2 and min(costs.values()) > 1.0
    runner = CliRunner()
    report = runner.invoke(app, ["cost", "report", "--since", "1h", "--by", "target", "--format", "json",
                                 "--profile", str(profiles[0])])
    assert report.exit_code == 0, report.output
    groups = json.loads(report.output)
    assert sum(g["requests"] for g in groups) == 60
    assert round(sum(g["cost_usd"] for g in groups), 2) == round(sum(costs.values()), 2)
    listed = runner.invoke(app, ["logs", "list", "--limit", "100", "--format", "json", "--profile",
                                 str(profiles[1])])
    assert {r["id"] for r in json.loads(listed.output)} == ids
    assert not any(p.parent.joinpath("state", "llmgw.db").exists() for p in profiles)


def test_a_database_restart_mid_load_loses_no_row(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.url("llmgw")
    env = {PASSWORD_ENV: postgres_server.password}
    profiles = [write(tmp_path, "a", url), write(tmp_path, "b", url)]
    ids: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    with serving_together([(p, p.parent / "unused.db", env) for p in profiles]) as servers:

        def load(base: str) -> None:
            with httpx.Client() as client:
                n = 0
                while not stop.is_set():
                    answer = chat(client, base, f"load {n}")
                    n += 1
                    if answer.status_code == 200:
                        ids.append(answer.headers["x-llmgw-request-id"])
                    else:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=load, args=(s.url,)) for s in servers for _ in range(2)]
        for t in threads:
            t.start()
        with httpx.Client() as client:
            wait_for(lambda: len(ids) >= 100)
            postgres_server.stop()
            during = len(ids)
            wait_for(lambda: len(ids) >= during + 200)   # requests keep flowing while the database is down
            wait_for(lambda: metric(client, servers[0].url, "llmgw_log_backlog") > 0)
            time.sleep(0.5)
            postgres_server.start()
            after = len(ids)
            wait_for(lambda: len(ids) >= after + 100)
            stop.set()
            for t in threads:
                t.join(30)
            wait_for(lambda: all(metric(client, s.url, "llmgw_log_backlog") == 0 for s in servers), timeout=30)
            assert all(metric(client, s.url, "llmgw_log_dropped_rows_total") == 0 for s in servers)
        stop_all(servers)
        outputs = ["".join(s.output) for s in servers]
    assert failures == []
    with psycopg.connect(url, password=postgres_server.password) as conn:
        logged = {r[0] for r in conn.execute("SELECT id FROM requests").fetchall()}
    assert set(ids) <= logged and len(logged) == len(ids)
    assert any("request log unreachable" in o and "spooling" in o for o in outputs)


def serve_once(profile: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmgw", "serve", "--profile", str(profile), "--port", "0"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_a_database_missing_at_start_up_is_one_line(tmp_path: Path, pg_cluster: PostgresServer) -> None:
    dead = write(tmp_path, "dead", f"postgresql://llmgw@127.0.0.1:{free_port()}/llmgw")
    done = serve_once(dead, {PASSWORD_ENV: "whatever"})
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the request log at postgresql://llmgw@127.0.0.1:" in lines[0]
    wrong = write(tmp_path, "wrong", pg_cluster.url())
    done = serve_once(wrong, {PASSWORD_ENV: "not-the-password-42"})
    assert done.returncode == 1 and "password authentication failed" in done.stderr
    assert "not-the-password-42" not in done.stderr + done.stdout and len(done.stderr.strip().splitlines()) == 1
    unset = serve_once(wrong, {})
    assert unset.returncode == 1 and f"state.password: environment variable {PASSWORD_ENV} is not set" \
        in unset.stderr.replace("\n", " ")


def test_serve_with_a_reachable_database_starts_and_stops_cleanly(tmp_path: Path, pg_url: str) -> None:
    server = start_serve(write(tmp_path, "ok", pg_url), tmp_path / "unused.db",
                         env={PASSWORD_ENV: os.environ[PASSWORD_ENV]})
    try:
        with httpx.Client() as client:
            assert chat(client, server.url, "hi").status_code == 200
    finally:
        assert server.stop() == 0
    with psycopg.connect(pg_url, password=os.environ[PASSWORD_ENV]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1


def test_a_team_budget_is_one_number_for_the_fleet(tmp_path: Path, pg_url: str) -> None:
    """Spend the budget through one instance: the other refuses too (its limits read the same counters)."""
    env = {PASSWORD_ENV: os.environ[PASSWORD_ENV], "FLEET_CI_KEY": "sk-fleet-test-key-0123456789"}
    profiles = []
    for name in ("a", "b"):
        data = profile_data(pg_url, tmp_path / name / "state")
        data["teams"] = {"search": {"budget_usd": {"daily": 1.0}}}
        data["keys"] = {"ci": {"key": "env:FLEET_CI_KEY", "team": "search"}}
        (tmp_path / name).mkdir()
        profiles.append(write_profile(tmp_path / name / "profile.toml", data))
    headers = {"Authorization": f"Bearer {env['FLEET_CI_KEY']}"}
    body = {"model": "fast", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with serving_together([(p, p.parent / "unused.db", env) for p in profiles]) as servers, httpx.Client() as client:
        spent = 0.0
        for _ in range(200):
            answer = client.post(f"{servers[0].url}/v1/chat/completions", json=body, headers=headers, timeout=30)
            if answer.status_code == 429:
                break
            assert answer.status_code == 200, answer.text
            spent += float(answer.headers["x-llmgw-cost-usd"])
        assert answer.status_code == 429 and "budget" in answer.text and 0.5 < spent <= 1.0
        other = client.post(f"{servers[1].url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert other.status_code == 429 and "budget" in other.text
