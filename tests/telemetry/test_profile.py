"""[telemetry] in the profile: what it accepts, and each problem named by its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app
from llmgw.profile import ProfileError, Secret, TelemetryConfig, parse_profile, secret_problems

BASE: dict[str, Any] = {"providers": {"m": {"kind": "mock"}}, "models": {"a": {"targets": ["m/x"]}}}


def problems(telemetry: Any) -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile({**BASE, "telemetry": telemetry})
    return info.value.problems


def test_off_when_absent_and_read_when_set() -> None:
    assert parse_profile(BASE).telemetry == TelemetryConfig()
    assert not parse_profile(BASE).telemetry.enabled
    config = parse_profile({**BASE, "telemetry": {
        "otlp_endpoint": "https://otel.example.com:4318", "service_name": "gw-eu", "sample_ratio": 0.25,
        "headers": {"authorization": "env:OTLP_TOKEN"}}}).telemetry
    assert config.enabled and config.otlp_endpoint == "https://otel.example.com:4318"
    assert (config.service_name, config.sample_ratio) == ("gw-eu", 0.25)
    assert config.headers == {"authorization": Secret("env:OTLP_TOKEN")}


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "ftp://host:21", "http://", "grpc://collector:4317",
                                      "http://host:notaport", "http://host:99999", "localhost"])
def test_the_endpoint_must_be_an_http_url(endpoint: str) -> None:
    (problem,) = problems({"otlp_endpoint": endpoint})
    assert problem.startswith("telemetry.otlp_endpoint: expected an http:// or https:// URL")


def test_every_problem_is_named() -> None:
    found = problems({"otlp_endpoint": 4318, "colour": "blue", "sample_ratio": 1.5, "service_name": " ",
                      "headers": {"x-token": 3, "bad name": "env:X", "empty": ""}})
    assert "telemetry.otlp_endpoint: expected a string, got an integer" in found
    assert any(p.startswith("telemetry.colour: unknown key (allowed: headers, otlp_endpoint") for p in found)
    assert "telemetry.sample_ratio: must be between 0 and 1, got 1.5" in found
    assert "telemetry.service_name: must not be empty" in found
    assert any(p.startswith("telemetry.headers.x-token: expected a string") for p in found)
    assert "telemetry.headers.bad name: not a valid HTTP header name" in found
    assert any(p.startswith("telemetry.headers.empty: expected a string") for p in found)
    assert problems({"service_name": "gw"}) == [
        "telemetry.otlp_endpoint: missing (the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318)"]
    assert problems("http://x") == ["telemetry: expected a table, got a string"]


def test_credentials_never_go_in_the_url_nor_into_the_error() -> None:
    (problem,) = problems({"otlp_endpoint": "https://user:hunter2@collector:4318"})
    assert problem.startswith("telemetry.otlp_endpoint: credentials do not belong in the URL")
    assert "hunter2" not in problem
    (problem,) = problems({"otlp_endpoint": "ftp://user:hunter2@collector"})
    assert "hunter2" not in problem


def test_export_headers_are_secrets_checked_like_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTLP_MISSING_TOKEN", raising=False)
    profile = parse_profile({**BASE, "telemetry": {"otlp_endpoint": "http://127.0.0.1:4318",
                                                   "headers": {"authorization": "env:OTLP_MISSING_TOKEN"}}})
    assert ("telemetry.headers.authorization", Secret("env:OTLP_MISSING_TOKEN")) in profile.secrets()
    assert secret_problems(profile) == [
        "telemetry.headers.authorization: environment variable OTLP_MISSING_TOKEN is not set"]


def test_llmgw_check_reports_a_bad_endpoint_in_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[providers.m]\nkind = "mock"\n[models.a]\ntargets = ["m/x"]\n'
                       '[telemetry]\notlp_endpoint = "localhost:4318"\n')
    result = CliRunner().invoke(app, ["check", "--profile", str(profile)])
    assert result.exit_code != 0
    assert "telemetry.otlp_endpoint: expected an http:// or https:// URL" in result.output
    assert "Traceback" not in result.output


def test_profile_show_round_trips_telemetry_without_secrets() -> None:
    from llmgw.cli.profile_show import MASK, effective

    profile = parse_profile({**BASE, "telemetry": {"otlp_endpoint": "http://127.0.0.1:4318", "sample_ratio": 0.5,
                                                   "headers": {"authorization": "env:OTLP_TOKEN",
                                                               "x-literal": "plain-secret-value"}}})
    shown = effective(profile)["telemetry"]
    assert shown == {"otlp_endpoint": "http://127.0.0.1:4318", "service_name": "llmgw", "sample_ratio": 0.5,
                     "headers": {"authorization": "env:OTLP_TOKEN", "x-literal": MASK}}
    assert "telemetry" not in effective(parse_profile(BASE))
