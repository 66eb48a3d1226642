"""`llmgw import litellm FILE [--out F]` through the real command line: stdout or --out, the report on stderr, no
overwrite without --force, one-line errors for bad input, no literal secret anywhere it writes — and a profile
imported from a config pointing at fake upstreams, served in-process, answering through its aliases and fallbacks."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from llmgw.profile import load_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI, answer_for
from tests.conftest import CANARY

from .test_first_use import invoke, isolated, write

__all__ = ["isolated"]  # the fixture, used automatically

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "litellm"
LITERALS = ("sk-proj-LITERALsecretVALUE0123456789abcdef", "sk-ant-api03-LITERALanthropicSECRET-0123456789",
            "sk-master-LITERAL-1234567890", "SECRETdbPASSWORD", "sk-lf-LITERALlangfuseSECRET")


def test_prints_the_profile_and_reports_on_stderr() -> None:
    result = invoke("import", "litellm", FIXTURES / "unsupported.yaml")
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["models"]["gpt-4o"]["targets"] == ["openai/gpt-4o"]
    assert data["providers"]["openai"] == {"kind": "openai", "api_key": "env:OPENAI_API_KEY"}
    assert "model_list[2].litellm_params.aws_region_name: no equivalent (Bedrock is not a provider kind here)" \
        in result.stderr
    assert "litellm_settings.callbacks: no equivalent" in result.stderr
    assert "aws_region_name" not in result.stdout.split("\n\n", 1)[1]   # only in the header comments


def test_out_writes_a_profile_llmgw_check_accepts(tmp_path: Path) -> None:
    out = tmp_path / "llmgw.toml"
    result = invoke("import", "litellm", FIXTURES / "loadbalance.yaml", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {out} (4 model aliases)" in result.stderr
    assert "OPENAI_API_KEY_EAST, OPENAI_API_KEY_WEST, ANTHROPIC_API_KEY" in result.stderr
    profile = load_profile(out)
    assert [t.name for t in profile.models["gpt-4o"].targets][:2] == ["openai/gpt-4o", "openai-2/gpt-4o"]
    env = {"OPENAI_API_KEY_EAST": "sk-a", "OPENAI_API_KEY_WEST": "sk-b", "ANTHROPIC_API_KEY": "sk-c"}
    checked = invoke("check", "--profile", out, env=env)
    assert checked.exit_code == 0, checked.output


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    out = write(tmp_path / "llmgw.toml", "# mine\n")
    result = invoke("import", "litellm", FIXTURES / "simple.yaml", "--out", out)
    assert result.exit_code == 1
    assert "exists; use --force" in result.stderr
    assert out.read_text() == "# mine\n"
    assert invoke("import", "litellm", FIXTURES / "simple.yaml", "--out", out, "--force").exit_code == 0
    assert "[models.gpt-4o]" in out.read_text()
    config = write(tmp_path / "config.yaml", (FIXTURES / "simple.yaml").read_text())
    itself = invoke("import", "litellm", config, "--out", config, "--force")
    assert itself.exit_code == 1 and "is the LiteLLM config itself" in itself.stderr
    assert config.read_text() == (FIXTURES / "simple.yaml").read_text()


def test_no_literal_secret_reaches_the_profile_or_the_terminal(tmp_path: Path) -> None:
    out = tmp_path / "llmgw.toml"
    written = invoke("import", "litellm", FIXTURES / "secrets.yaml", "--out", out)
    printed = invoke("import", "litellm", FIXTURES / "secrets.yaml")
    assert written.exit_code == printed.exit_code == 0
    for literal in LITERALS:
        for text in (out.read_text(), written.stdout, written.stderr, printed.stdout, printed.stderr):
            assert literal not in text
    assert "set the environment variable OPENAI_2_API_KEY" in printed.stderr
    assert 'admin_key = "env:LLMGW_ADMIN_KEY"' in out.read_text()


@pytest.mark.parametrize(("text", "message"), [
    ("model_list:\n  - model_name: a\n   litellm_params: {\n", "invalid YAML at line"),
    ("- just\n- a list\n", "not a LiteLLM proxy config: expected a mapping at the top, got a list"),
    ("general_settings:\n  master_key: os.environ/K\n", "not a LiteLLM proxy config: no model_list"),
    ("model_list: gpt-4o\n", "model_list: expected a list of deployments, got a string"),
    ("", "expected a mapping at the top, got nothing"),
    ("!!python/object/apply:os.system ['true']\n", "invalid YAML"),
])
def test_bad_input_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "config.yaml", text)
    result = invoke("import", "litellm", config)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert result.stdout == ""


def test_names_from_the_config_cannot_drive_the_terminal(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", """\
        model_list:
          - model_name: "evil\\e]0;owned\\a\\e[2J"
            litellm_params: {model: "bedrock/x", "\\e[31mred": 1, api_key: "os.environ/K\\e[1m"}
          - model_name: ok
            litellm_params: {model: openai/gpt-4o, api_key: "os.environ/K\\e[1m"}
        """)
    out = tmp_path / "llmgw.toml"
    for args in (("import", "litellm", config), ("import", "litellm", config, "--out", out)):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr
        assert "red: no equivalent" in result.stderr
    assert "\x1b" not in out.read_text()   # TOML escapes it in strings; comments are made printable
    assert load_profile(out).providers["openai"].api_key is not None


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = invoke("import", "litellm", tmp_path / "nope.yaml")
    assert missing.exit_code == 1 and "nope.yaml: file not found" in missing.stderr
    folder = invoke("import", "litellm", tmp_path)
    assert folder.exit_code == 1 and "is a directory" in folder.stderr


def test_help_has_an_example() -> None:
    result = invoke("import", "litellm", "--help")
    assert result.exit_code == 0 and "Example: llmgw import litellm config.yaml --out llmgw.toml" in result.stdout
    assert "litellm" in invoke("import", "--help").stdout


# --- end to end ---------------------------------------------------------------------------------------------------

HELLO = [{"role": "user", "content": "hello from a LiteLLM client"}]


async def test_an_imported_profile_serves_through_its_aliases_and_fallbacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any) -> None:
    monkeypatch.setenv("FAKE_UP_KEY", CANARY)
    async with FakeOpenAI(api_key=CANARY) as backup, FakeOpenAI(api_key=CANARY) as broken:
        config = write(tmp_path / "config.yaml", f"""\
            model_list:
              - model_name: chat
                litellm_params:
                  model: openai/gpt-4o-mini
                  api_base: {backup.base_url}
                  api_key: os.environ/FAKE_UP_KEY
              - model_name: openai/gpt-4o-mini
                litellm_params:
                  model: openai/gpt-4o-mini
                  api_base: {backup.base_url}
                  api_key: os.environ/FAKE_UP_KEY
              - model_name: flaky
                litellm_params:
                  model: openai/gpt-4o
                  api_base: {broken.base_url.replace("127.0.0.1", "localhost")}
                  api_key: os.environ/FAKE_UP_KEY
                  rpm: 100
            router_settings:
              fallbacks:
                - flaky: ["chat"]
            general_settings:
              master_key: sk-litellm-master-literal
            """)
        out = tmp_path / "llmgw.toml"
        result = invoke("import", "litellm", config, "--out", out)
        assert result.exit_code == 0, result.output
        assert "sk-litellm-master-literal" not in out.read_text() + result.output
        assert "set the environment variable LLMGW_ADMIN_KEY" in result.stderr
        with out.open("a", encoding="utf-8") as f:   # keep the request log out of ~/.llmgw
            f.write(f'\n[state]\nurl = "sqlite:///{tmp_path / "llmgw.db"}"\n')
        monkeypatch.setenv("LLMGW_ADMIN_KEY", "the-old-master-key")   # as the report told us to
        profile = load_profile(out)
        client = await aiohttp_client(make_app(profile))

        resp = await client.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["choices"][0]["message"]["content"] == answer_for(HELLO)
        assert resp.headers["x-llmgw-target"] == "local/gpt-4o-mini"
        assert backup.requests[-1]["body"]["model"] == "gpt-4o-mini"

        resp = await client.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": HELLO})
        assert resp.status == 200 and resp.headers["x-llmgw-target"] == "local/gpt-4o-mini"

        broken.fail_next(503, times=5)
        resp = await client.post("/v1/chat/completions", json={"model": "flaky", "messages": HELLO})
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-llmgw-target"] == "local/gpt-4o-mini"
        assert resp.headers["x-llmgw-attempts"] == "2"
        assert broken.requests[-1]["body"]["model"] == "gpt-4o"
        await client.close()
