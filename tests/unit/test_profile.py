"""The TOML profile (SPEC §2): parsing into dataclasses, every problem with its key path, secrets, lookup order."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from llmgw.profile import (
    DEFAULT_BASE_URLS,
    ModelConfig,
    Price,
    Profile,
    ProfileError,
    ProviderConfig,
    Secret,
    SecretError,
    ServerConfig,
    StateConfig,
    Target,
    host_problems,
    load_profile,
    parse_profile,
    secret_problems,
)

REPO = Path(__file__).resolve().parents[2]

# A key path at the start of a problem: dotted names, [index] and "quoted" price keys.
KEY_PATH = re.compile(r'^[A-Za-z_][\w\-]*(\.("[^"]*"|[\w\-]+)|\[\d+\])*: \S')


def write(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.source == str(path)
    assert info.value.problems, "a ProfileError must carry at least one problem"
    return info.value.problems


def parse_text(text: str) -> Profile:
    return parse_profile(tomllib.loads(textwrap.dedent(text)))


def parse_problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_text(text)
    return info.value.problems


def has(problems: list[str], prefix: str, *words: str) -> bool:
    """Some problem starts with ``prefix`` (the key path) and contains every word."""
    return any(p.startswith(prefix) and all(w in p for w in words) for p in problems)


# --- valid profiles --------------------------------------------------------------------------------------------

FULL = """
[server]
host = "127.0.0.1"
port = 4100
workers = 2
max_body_mb = 4
timeout_s = 30
log_bodies = false
admin_key = "env:LLMGW_TEST_ADMIN_KEY"

[state]
url = "sqlite:///{db}"
shared = "redis://127.0.0.1:6379/0"

[providers.openai]
kind = "openai"
api_key = "env:OPENAI_API_KEY"

[providers.anthropic]
kind = "anthropic"
api_key = "file:/run/secrets/anthropic"

[providers.gemini]
kind = "gemini"
api_key = "env:GEMINI_API_KEY"

[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1/"
headers = {{ X-Team = "search" }}
drop_params = ["parallel_tool_calls"]

[providers.mock]
kind = "mock"
latency_ms = 5
fail_rate = 0.25
fail_status = 503

[models.fast]
targets = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]
strategy = "loadbalance"
weights = [3, 1]
retries = 2
cache = false
data_classes = ["public", "internal"]

[models.llama]
targets = ["local/meta-llama/Llama-3"]

[models.everything]
targets = ["fast", "llama", "mock/mock-1", "openai/gpt-4o-mini"]
strategy = "least-latency"

[teams.search]
rpm = 600

[keys.ci]
key = "env:LLMGW_CI_KEY"
team = "search"

[cache]
exact = true

[[guardrails]]
name = "pii"
kind = "pii"

[prices]
"local/meta-llama/Llama-3" = {{ input = 0.0, output = 0 }}
"gpt-x" = {{ input = 1, output = 2.5, cached_input = 0.5 }}
"""


@pytest.fixture
def full(tmp_path: Path) -> Profile:
    return load_profile(write(tmp_path, FULL.format(db=tmp_path / "log.db")))


def test_full_profile_server_and_state(full: Profile, tmp_path: Path) -> None:
    assert full.server == ServerConfig(host="127.0.0.1", port=4100, workers=2, max_body_mb=4.0, timeout_s=30.0,
                                       log_bodies=False, admin_key=Secret("env:LLMGW_TEST_ADMIN_KEY"))
    assert isinstance(full.server.max_body_mb, float)
    assert full.state == StateConfig(url=f"sqlite:///{tmp_path / 'log.db'}", shared="redis://127.0.0.1:6379/0")
    assert full.state.db_path == tmp_path / "log.db"
    assert full.source == str(tmp_path / "profile.toml")


def test_full_profile_providers(full: Profile) -> None:
    assert list(full.providers) == ["openai", "anthropic", "gemini", "local", "mock"]
    openai = full.providers["openai"]
    assert openai == ProviderConfig(name="openai", kind="openai", api_key=Secret("env:OPENAI_API_KEY"),
                                    base_url="https://api.openai.com/v1")
    assert full.providers["anthropic"].api_key == Secret("file:/run/secrets/anthropic")
    local = full.providers["local"]
    assert local.kind == "openai-compatible"
    assert local.base_url == "http://127.0.0.1:8000/v1"  # trailing slash removed
    assert dict(local.headers) == {"X-Team": "search"}
    assert local.drop_params == ("parallel_tool_calls",)
    assert local.api_key is None
    mock = full.providers["mock"]
    assert (mock.latency_ms, mock.fail_rate, mock.fail_status) == (5.0, 0.25, 503)
    assert mock.base_url is None


def test_base_url_defaults_per_kind(full: Profile) -> None:
    assert full.providers["openai"].base_url == "https://api.openai.com/v1"
    assert full.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert full.providers["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert DEFAULT_BASE_URLS["openai"] == "https://api.openai.com/v1"


def test_base_url_override_is_kept() -> None:
    profile = parse_text("""
        [providers.openai]
        kind = "openai"
        base_url = "https://proxy.example.com/v1/"
    """)
    assert profile.providers["openai"].base_url == "https://proxy.example.com/v1"


def test_full_profile_models(full: Profile) -> None:
    fast = full.models["fast"]
    assert fast == ModelConfig(
        alias="fast",
        targets=(Target("openai", "gpt-4o-mini"), Target("anthropic", "claude-3-5-haiku-latest")),
        strategy="loadbalance", weights=(3.0, 1.0), retries=2, cache=False, data_classes=("public", "internal"),
    )
    assert [t.name for t in fast.targets] == ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]


def test_target_splits_at_first_slash_only(full: Profile) -> None:
    (target,) = full.models["llama"].targets
    assert target == Target(provider="local", model="meta-llama/Llama-3")
    assert target.name == "local/meta-llama/Llama-3"


def test_alias_targets_expand_in_order_without_duplicates(full: Profile) -> None:
    everything = full.models["everything"]
    assert [t.name for t in everything.targets] == [
        "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "local/meta-llama/Llama-3", "mock/mock-1",
    ]
    assert everything.strategy == "least-latency"


def test_alias_expansion_is_transitive() -> None:
    profile = parse_text("""
        [providers.m]
        kind = "mock"
        [models.c]
        targets = ["b", "m/three"]
        [models.b]
        targets = ["a", "m/two"]
        [models.a]
        targets = ["m/one"]
    """)
    assert [t.model for t in profile.models["c"].targets] == ["one", "two", "three"]


def test_full_profile_prices_and_later_sections(full: Profile) -> None:
    assert full.prices == {"local/meta-llama/Llama-3": Price(0.0, 0.0, None), "gpt-x": Price(1.0, 2.5, 0.5)}
    assert all(isinstance(v, float) for p in full.prices.values() for v in (p.input, p.output))
    assert set(full.extra) == {"teams", "keys", "cache", "guardrails"}
    assert full.extra["teams"]["search"]["rpm"] == 600
    assert full.extra["guardrails"][0]["name"] == "pii"


def test_secrets_lists_every_reference_with_its_path(full: Profile) -> None:
    paths = dict(full.secrets())
    assert paths == {
        "providers.openai.api_key": Secret("env:OPENAI_API_KEY"),
        "providers.anthropic.api_key": Secret("file:/run/secrets/anthropic"),
        "providers.gemini.api_key": Secret("env:GEMINI_API_KEY"),
        "server.admin_key": Secret("env:LLMGW_TEST_ADMIN_KEY"),
        "keys.ci.key": Secret("env:LLMGW_CI_KEY"),
    }


def test_empty_profile_gets_every_default() -> None:
    profile = parse_profile({})
    assert profile.server == ServerConfig()
    assert (profile.server.host, profile.server.port, profile.server.workers) == ("127.0.0.1", 4000, 1)
    assert (profile.server.max_body_mb, profile.server.timeout_s, profile.server.log_bodies) == (8.0, 600.0, True)
    assert profile.server.admin_key is None
    assert profile.state.url == "sqlite:///~/.llmgw/llmgw.db"
    assert profile.state.shared is None
    assert profile.state.db_path == Path("~/.llmgw/llmgw.db").expanduser()
    assert (dict(profile.providers), dict(profile.models), dict(profile.prices)) == ({}, {}, {})


def test_model_and_provider_defaults() -> None:
    profile = parse_text("""
        [providers.m]
        kind = "mock"
        [models.x]
        targets = ["m/a"]
    """)
    assert profile.models["x"] == ModelConfig(alias="x", targets=(Target("m", "a"),), strategy="fallback",
                                              weights=(), retries=0, cache=True, data_classes=())
    m = profile.providers["m"]
    assert (m.api_key, m.base_url, dict(m.headers), m.latency_ms, m.fail_rate, m.fail_status, m.drop_params) == (
        None, None, {}, 0.0, 0.0, 500, ())


def test_profile_dataclasses_are_frozen(full: Profile) -> None:
    with pytest.raises(AttributeError):
        full.server.port = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        full.models["fast"].strategy = "x"  # type: ignore[misc]


@pytest.mark.parametrize("path", sorted((REPO / "profiles").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_profiles_parse(path: Path) -> None:
    profile = load_profile(path)
    assert profile.models, f"{path.name} declares no model aliases"
    for model in profile.models.values():
        assert model.targets
        for target in model.targets:
            assert target.provider in profile.providers
    assert host_problems(profile) == []


def test_shipped_profiles_exist() -> None:
    names = {p.name for p in (REPO / "profiles").glob("*.toml")}
    assert {"demo.toml", "openai.toml", "local-vllm.toml"} <= names


def test_local_vllm_profile_keeps_slashes_in_model() -> None:
    profile = load_profile(REPO / "profiles" / "local-vllm.toml")
    (target,) = profile.models["local"].targets
    assert target == Target("local", "meta-llama/Llama-3.1-8B-Instruct")


# --- problems, each with its key path ---------------------------------------------------------------------------

PROVIDER_M = '[providers.m]\nkind = "mock"\n'

CASES = [
    # unknown keys at every level
    ("top", 'bogus = 1\n', "bogus", ("unknown key",)),
    ("server", '[server]\nhots = "x"\n', "server.hots", ("unknown key", "host")),
    ("state", '[state]\npath = "x"\n', "state.path", ("unknown key",)),
    ("provider", '[providers.x]\nkind = "mock"\ntimeout = 3\n', "providers.x.timeout", ("unknown key",)),
    ("model", PROVIDER_M + '[models.x]\ntargets = ["m/a"]\nstrat = "fallback"\n', "models.x.strat",
     ("unknown key",)),
    ("price", '[prices]\n"m/a" = { input = 1, output = 2, extra = 3 }\n', 'prices."m/a".extra', ("unknown key",)),
    # wrong types
    ("port-string", '[server]\nport = "4000"\n', "server.port", ("expected an integer", "got a string")),
    ("port-float", '[server]\nport = 4000.5\n', "server.port", ("expected an integer",)),
    ("workers-bool", '[server]\nworkers = true\n', "server.workers", ("expected an integer", "got a boolean")),
    ("log-bodies-string", '[server]\nlog_bodies = "yes"\n', "server.log_bodies", ("expected a boolean",)),
    ("server-not-table", 'server = 5\n', "server", ("expected a table",)),
    ("teams-not-table", 'teams = 5\n', "teams", ("expected a table",)),
    ("guardrails-not-array", 'guardrails = 5\n', "guardrails", ("expected an array",)),
    ("targets-string", PROVIDER_M + '[models.x]\ntargets = "m/a"\n', "models.x.targets", ("expected an array",)),
    ("targets-item", PROVIDER_M + '[models.x]\ntargets = ["m/a", 5]\n', "models.x.targets[1]",
     ("provider/model",)),
    ("weights-length", PROVIDER_M + '[models.x]\ntargets = ["m/a", "m/b"]\nstrategy = "loadbalance"\n'
     'weights = [1]\n', "models.x.weights", ("1 weights for 2 targets",)),
    ("weights-type", PROVIDER_M + '[models.x]\ntargets = ["m/a"]\nweights = ["heavy"]\n', "models.x.weights",
     ("non-negative numbers",)),
    ("retries", PROVIDER_M + '[models.x]\ntargets = ["m/a"]\nretries = 11\n', "models.x.retries",
     ("between 0 and 10",)),
    ("strategy", PROVIDER_M + '[models.x]\ntargets = ["m/a"]\nstrategy = "random"\n', "models.x.strategy",
     ("unknown strategy", "'random'")),
    ("headers", '[providers.x]\nkind = "mock"\nheaders = { A = 1 }\n', "providers.x.headers.A",
     ("expected a string",)),
    # providers
    ("kind-unknown", '[providers.x]\nkind = "azure"\n', "providers.x.kind", ("unknown kind", "'azure'", "openai")),
    ("kind-missing", '[providers.x]\nbase_url = "http://h/v1"\n', "providers.x.kind", ("missing",)),
    ("compat-no-base-url", '[providers.x]\nkind = "openai-compatible"\n', "providers.x.base_url", ("required",)),
    ("base-url-scheme", '[providers.x]\nkind = "openai"\nbase_url = "ftp://h"\n', "providers.x.base_url",
     ("http://",)),
    ("fail-rate-high", '[providers.x]\nkind = "mock"\nfail_rate = 1.5\n', "providers.x.fail_rate",
     ("between 0.0 and 1.0",)),
    ("fail-rate-negative", '[providers.x]\nkind = "mock"\nfail_rate = -0.1\n', "providers.x.fail_rate",
     ("between 0.0 and 1.0",)),
    ("fail-status", '[providers.x]\nkind = "mock"\nfail_status = 200\n', "providers.x.fail_status", ("400-599",)),
    ("latency", '[providers.x]\nkind = "mock"\nlatency_ms = -1\n', "providers.x.latency_ms", ("negative",)),
    # targets
    ("unknown-provider", PROVIDER_M + '[models.x]\ntargets = ["nope/gpt-4o"]\n', "models.x.targets[0]",
     ("unknown provider", "'nope'")),
    ("no-model", PROVIDER_M + '[models.x]\ntargets = ["m/"]\n', "models.x.targets[0]", ("no model",)),
    ("unknown-alias", PROVIDER_M + '[models.x]\ntargets = ["m/a", "ghost"]\n', "models.x.targets[1]",
     ("'ghost'", "alias")),
    ("targets-missing", PROVIDER_M + '[models.x]\nstrategy = "fallback"\n', "models.x.targets", ("missing",)),
    # state and server values
    ("state-url", '[state]\nurl = "mysql://db/llmgw"\n', "state.url", ("sqlite:///",)),
    ("state-shared", '[state]\nshared = "memcached://x"\n', "state.shared", ("redis://",)),
    ("port-range", '[server]\nport = 70000\n', "server.port", ("0-65535",)),
    ("workers-zero", '[server]\nworkers = 0\n', "server.workers", ("at least 1",)),
    ("max-body", '[server]\nmax_body_mb = 0\n', "server.max_body_mb", ("greater than 0",)),
    # prices
    ("price-missing-output", '[prices]\n"m/a" = { input = 1 }\n', 'prices."m/a".output', ("missing",)),
    ("price-negative", '[prices]\n"m/a" = { input = -1, output = 2 }\n', 'prices."m/a".input', ("negative",)),
    ("price-string", '[prices]\n"m/a" = { input = "1", output = 2 }\n', 'prices."m/a".input',
     ("expected", "got a string")),
]


@pytest.mark.parametrize(("text", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_reported_with_its_key_path(tmp_path: Path, text: str, path: str, words: tuple) -> None:
    problems = problems_of(tmp_path, text)
    assert has(problems, f"{path}:", *words), problems
    for problem in problems:
        assert KEY_PATH.match(problem), f"problem without a key path: {problem!r}"


def test_unknown_key_message_lists_the_allowed_keys() -> None:
    problems = parse_problems('[server]\nprot = 1\n')
    assert problems == [
        "server.prot: unknown key (allowed: admin_key, allowed_hosts, body_timeout_s, connect_timeout_s,"
        " default_max_tokens, first_token_timeout_s, header_timeout_s, host, idle_timeout_s, keepalive_timeout_s,"
        " log_bodies, max_body_mb, max_connections, metrics_auth, port, timeout_s, workers)"]


def test_targets_of_the_wrong_type_are_not_called_missing() -> None:
    """A present key of the wrong type is one problem, a type error; claiming it is missing misleads the user."""
    problems = parse_problems(PROVIDER_M + '[models.x]\ntargets = "m/a"\n')
    assert problems == ["models.x.targets: expected an array, got a string"]


def test_empty_targets_array_is_a_problem() -> None:
    """An alias with no targets can never answer; `llmgw check` must say so instead of accepting it."""
    problems = parse_problems(PROVIDER_M + '[models.x]\ntargets = []\n')
    assert has(problems, "models.x.targets:"), problems


def test_alias_cycle_is_reported_as_a_cycle() -> None:
    problems = parse_problems(PROVIDER_M + '[models.a]\ntargets = ["b"]\n[models.b]\ntargets = ["a"]\n')
    cycles = [p for p in problems if "cycle" in p]
    assert cycles, problems
    assert cycles[0].startswith(("models.a.targets[0]:", "models.b.targets[0]:"))
    assert "a -> b -> a" in cycles[0] or "b -> a -> b" in cycles[0]


def test_self_and_long_alias_cycles() -> None:
    problems = parse_problems(PROVIDER_M + '[models.a]\ntargets = ["a"]\n')
    assert has(problems, "models.a.targets[0]:", "cycle", "a -> a"), problems
    problems = parse_problems(PROVIDER_M + '[models.a]\ntargets = ["b"]\n[models.b]\ntargets = ["c"]\n'
                              '[models.c]\ntargets = ["m/x", "a"]\n')
    assert any("cycle" in p and "a -> b -> c -> a" in p for p in problems), problems


def test_invalid_toml_is_one_problem_with_the_position(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[server]\nport = \n')
    assert len(problems) == 1
    assert problems[0].startswith("invalid TOML:")
    assert "line 2" in problems[0]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, """
        colour = "blue"
        [server]
        port = "4000"
        workers = true
        [state]
        url = "mysql://x"
        [providers.m]
        kind = "mock"
        fail_rate = 2.0
        [providers.z]
        kind = "azure"
        [models.a]
        targets = ["b"]
        [models.b]
        targets = ["a"]
        [models.c]
        targets = ["nope/x"]
        [models.d]
        strategy = "fallback"
        [prices]
        "m/x" = { input = 1, output = 2, typo = 3 }
    """)
    expected = ["colour:", "server.port:", "server.workers:", "state.url:", "providers.m.fail_rate:",
                "providers.z.kind:", "models.c.targets[0]:", "models.d.targets:", 'prices."m/x".typo:']
    for prefix in expected:
        assert has(problems, prefix), f"{prefix} not reported in {problems}"
    assert any("cycle" in p for p in problems)
    assert len(problems) >= len(expected) + 1


def test_profile_error_message_names_source_and_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = \"x\"\n")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "server.port" in str(info.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "nope.toml")
    assert info.value.problems[0].startswith("file not found")


# --- secrets ----------------------------------------------------------------------------------------------------

LITERAL = "sk-live-0123456789abcdef"


def test_literal_secret_never_in_repr_or_str() -> None:
    secret = Secret(LITERAL)
    for text in (repr(secret), str(secret), f"{secret}", secret.describe()):
        assert LITERAL not in text
        assert "<literal>" in text
    assert secret.resolve() == LITERAL


def test_literal_secret_not_in_containing_dataclass_repr() -> None:
    profile = parse_text(f"""
        [server]
        admin_key = "{LITERAL}"
        [providers.openai]
        kind = "openai"
        api_key = "{LITERAL}"
    """)
    assert LITERAL not in repr(profile)
    assert LITERAL not in repr(profile.providers["openai"])
    assert LITERAL not in str(profile.server)


def test_env_secret_repr_names_the_variable_not_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_TEST_SECRET", "value-that-must-not-leak")
    secret = Secret("env:LLMGW_TEST_SECRET")
    assert repr(secret) == "Secret(env:LLMGW_TEST_SECRET)"
    assert "value-that-must-not-leak" not in str(secret)
    assert secret.resolve() == "value-that-must-not-leak"


def test_env_secret_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMGW_TEST_UNSET", raising=False)
    with pytest.raises(SecretError, match="LLMGW_TEST_UNSET is not set"):
        Secret("env:LLMGW_TEST_UNSET").resolve()
    monkeypatch.setenv("LLMGW_TEST_UNSET", "")
    with pytest.raises(SecretError, match="LLMGW_TEST_UNSET"):
        Secret("env:LLMGW_TEST_UNSET").resolve()


def test_file_secret_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "key.txt"
    key.write_text("  file-secret-value\n", encoding="utf-8")
    secret = Secret(f"file:{key}")
    assert secret.resolve() == "file-secret-value"
    assert "file-secret-value" not in repr(secret)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Secret("file:~/key.txt").resolve() == "file-secret-value"


def test_file_secret_missing_empty_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot read secret file"):
        Secret(f"file:{tmp_path / 'absent'}").resolve()
    with pytest.raises(SecretError, match="cannot read secret file"):
        Secret(f"file:{tmp_path}").resolve()  # a directory
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(SecretError, match="is empty"):
        Secret(f"file:{tmp_path / 'empty'}").resolve()


def test_secret_problems_name_what_is_wrong_without_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMGW_TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("LLMGW_TEST_PRESENT_KEY", "present-secret-value")
    monkeypatch.setenv("LLMGW_TEST_ADMIN", "admin-secret-value")
    profile = parse_text(f"""
        [server]
        admin_key = "env:LLMGW_TEST_ADMIN"
        [providers.openai]
        kind = "openai"
        api_key = "env:LLMGW_TEST_MISSING_KEY"
        [providers.anthropic]
        kind = "anthropic"
        api_key = "file:{tmp_path / 'no-such-file'}"
        [providers.gemini]
        kind = "gemini"
        api_key = "env:LLMGW_TEST_PRESENT_KEY"
        [providers.g2]
        kind = "gemini"
        [providers.local]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:8000/v1"
    """)
    problems = secret_problems(profile)
    assert len(problems) == 3, problems
    assert has(problems, "providers.openai.api_key:", "LLMGW_TEST_MISSING_KEY", "not set")
    assert has(problems, "providers.anthropic.api_key:", "no-such-file")
    assert has(problems, "providers.g2.api_key:", "missing")
    text = "\n".join(problems)
    assert "present-secret-value" not in text
    assert "admin-secret-value" not in text


def test_secret_problems_empty_when_everything_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_TEST_OK_KEY", "x")
    (tmp_path / "k").write_text("y", encoding="utf-8")
    profile = parse_text(f"""
        [providers.openai]
        kind = "openai"
        api_key = "env:LLMGW_TEST_OK_KEY"
        [providers.anthropic]
        kind = "anthropic"
        api_key = "file:{tmp_path / 'k'}"
        [providers.mock]
        kind = "mock"
    """)
    assert secret_problems(profile) == []


# --- host ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_hosts_are_fine(host: str) -> None:
    assert host_problems(parse_profile({"server": {"host": host}})) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_non_loopback_without_keys_or_teams_is_refused(host: str) -> None:
    (problem,) = host_problems(parse_profile({"server": {"host": host}}))
    assert problem.startswith("server.host:")
    assert repr(host) in problem
    assert "open proxy" in problem


def test_non_loopback_with_keys_or_teams_is_allowed() -> None:
    with_keys = parse_profile({"server": {"host": "0.0.0.0"}, "teams": {"t": {}},
                               "keys": {"ci": {"key": "env:K", "team": "t"}}})
    with_teams = parse_profile({"server": {"host": "0.0.0.0"}, "teams": {"t": {"rpm": 1}}})
    assert host_problems(with_keys) == []
    assert host_problems(with_teams) == []


def test_host_argument_overrides_profile_host() -> None:
    profile = parse_profile({})
    assert host_problems(profile, "0.0.0.0")
    assert host_problems(parse_profile({"server": {"host": "0.0.0.0"}}), "127.0.0.1") == []


# --- lookup order ----------------------------------------------------------------------------------------------


@pytest.fixture
def lookup_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    write(tmp_path, "[server]\nport = 1001\n", "explicit.toml")
    write(tmp_path, "[server]\nport = 1002\n", "from-env.toml")
    return tmp_path


def test_explicit_path_wins(lookup_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(lookup_dir, "[server]\nport = 1003\n", "llmgw.toml")
    monkeypatch.setenv("LLMGW_PROFILE", str(lookup_dir / "from-env.toml"))
    assert load_profile(lookup_dir / "explicit.toml").server.port == 1001
    assert load_profile(str(lookup_dir / "explicit.toml")).server.port == 1001


def test_env_var_beats_local_file(lookup_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(lookup_dir, "[server]\nport = 1003\n", "llmgw.toml")
    monkeypatch.setenv("LLMGW_PROFILE", str(lookup_dir / "from-env.toml"))
    profile = load_profile()
    assert profile.server.port == 1002
    assert profile.source == str(lookup_dir / "from-env.toml")


def test_environ_argument_is_used_instead_of_os_environ(lookup_dir: Path) -> None:
    assert load_profile(environ={"LLMGW_PROFILE": str(lookup_dir / "from-env.toml")}).server.port == 1002


def test_local_llmgw_toml_is_used_without_env(lookup_dir: Path) -> None:
    write(lookup_dir, "[server]\nport = 1003\n", "llmgw.toml")
    profile = load_profile()
    assert profile.server.port == 1003
    assert profile.source == "llmgw.toml"


def test_builtin_demo_when_nothing_else(lookup_dir: Path) -> None:
    profile = load_profile()
    assert profile.source == "<built-in demo>"
    assert profile.providers
    assert all(p.kind == "mock" for p in profile.providers.values())
    assert "fast" in profile.models
    assert secret_problems(profile) == []
    assert host_problems(profile) == []


def test_shipped_demo_matches_builtin_demo(lookup_dir: Path) -> None:
    builtin = load_profile()
    shipped = load_profile(REPO / "profiles" / "demo.toml")
    assert builtin.models == shipped.models
    assert builtin.providers == shipped.providers


def test_env_var_pointing_at_missing_file_is_an_error(lookup_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_PROFILE", str(lookup_dir / "missing.toml"))
    with pytest.raises(ProfileError, match="file not found"):
        load_profile()


def test_provider_headers_that_would_break_a_request_are_refused() -> None:
    problems = parse_problems('''
        [providers.up]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:9/v1"
        headers = { "x-team" = "a\\r\\nX-Injected: 1", "bad name" = "v", "x-null" = "a\\u0000b", "x-num" = 3 }
    ''')
    assert has(problems, 'providers.up.headers.x-team', "line break")
    assert has(problems, 'providers.up.headers.bad name', "not a valid HTTP header name")
    assert has(problems, 'providers.up.headers.x-null', "line break or NUL")
    assert has(problems, 'providers.up.headers.x-num', "expected a string")
    assert parse_text('''
        [providers.up]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:9/v1"
        headers = { "x-team" = "search; v=2" }
    ''').providers["up"].headers == {"x-team": "search; v=2"}
