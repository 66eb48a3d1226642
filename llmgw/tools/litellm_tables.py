"""What a LiteLLM proxy config's vocabulary means here: its provider prefixes (the llmgw kind, section name, default
base URL and key variable of each), the ones with no provider kind here, and the report line for every setting
that has no equivalent. Data only: :mod:`llmgw.tools.litellm_import` and :mod:`llmgw.tools.litellm_deployments`
read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SECTIONS = ("model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables")

@dataclass(frozen=True, slots=True)
class Upstream:
    """How one LiteLLM provider prefix maps: the llmgw kind, the section name, the default base URL, the variable
    LiteLLM reads the key from when ``api_key`` is absent (None: no key needed), whether its ``api_base`` lacks the
    ``/v1`` an OpenAI-compatible base URL has, and whether it is a local server (free unless priced)."""

    kind: str
    name: str
    base_url: str | None = None
    key_env: str | None = None
    add_v1: bool = False
    local: bool = False


def hosted(name: str, base_url: str, key_env: str) -> Upstream:
    return Upstream("openai-compatible", name, base_url, key_env)


UPSTREAMS: Mapping[str, Upstream] = {
    "openai": Upstream("openai", "openai", key_env="OPENAI_API_KEY"),
    "anthropic": Upstream("anthropic", "anthropic", key_env="ANTHROPIC_API_KEY"),
    "gemini": Upstream("gemini", "gemini", key_env="GEMINI_API_KEY"),
    "hosted_vllm": Upstream("openai-compatible", "vllm", "http://127.0.0.1:8000/v1", add_v1=True, local=True),
    "ollama": Upstream("openai-compatible", "ollama", "http://127.0.0.1:11434/v1", add_v1=True, local=True),
    "ollama_chat": Upstream("openai-compatible", "ollama", "http://127.0.0.1:11434/v1", add_v1=True, local=True),
    "lm_studio": Upstream("openai-compatible", "lm-studio", "http://127.0.0.1:1234/v1", add_v1=True, local=True),
    "llamafile": Upstream("openai-compatible", "llamafile", "http://127.0.0.1:8080/v1", add_v1=True, local=True),
    "groq": hosted("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": hosted("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": hosted("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": hosted("together", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "openrouter": hosted("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "fireworks_ai": hosted("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": hosted("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "perplexity": hosted("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "deepinfra": hosted("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "cerebras": hosted("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "nvidia_nim": hosted("nvidia-nim", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"),
}

# Prefixes LiteLLM knows that have no provider kind here (their auth or wire format is their own), by their name.
UNSUPPORTED: Mapping[str, str] = {
    "azure": "Azure OpenAI", "azure_ai": "Azure AI", "azure_text": "Azure OpenAI", "bedrock": "Bedrock",
    "sagemaker": "SageMaker", "sagemaker_chat": "SageMaker", "vertex_ai": "Vertex AI",
    "vertex_ai_beta": "Vertex AI", "cohere": "Cohere", "cohere_chat": "Cohere", "huggingface": "Hugging Face",
    "replicate": "Replicate", "watsonx": "watsonx", "watsonx_text": "watsonx", "databricks": "Databricks",
    "cloudflare": "Cloudflare Workers AI", "predibase": "Predibase", "triton": "Triton", "ai21": "AI21",
    "ai21_chat": "AI21", "palm": "PaLM", "clarifai": "Clarifai", "aleph_alpha": "Aleph Alpha",
    "nlp_cloud": "NLP Cloud", "petals": "Petals", "baseten": "Baseten", "vllm": "vLLM in-process (not a server)",
    "text-completion-openai": "OpenAI text completions", "text-completion-codestral": "Codestral completions",
    "codestral": "Codestral", "voyage": "Voyage", "jina_ai": "Jina AI", "snowflake": "Snowflake", "oci": "OCI",
    "github": "GitHub Models", "dashscope": "DashScope", "volcengine": "Volcengine", "custom": "custom handlers",
    "custom_openai": "custom OpenAI", "litellm_proxy": "another LiteLLM proxy",
}

BARE_MODELS = (("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
                ("text-embedding-", "openai"), ("dall-e-", "openai"), ("whisper-", "openai"), ("tts-", "openai"),
                ("omni-moderation-", "openai"), ("text-moderation-", "openai"), ("claude-", "anthropic"),
                ("gemini-", "gemini"))

OPENAI_HOST = "api.openai.com"
PLACEHOLDER_KEYS = {"", "none", "null", "empty", "fake", "fake-key", "dummy", "not-needed", "no-key", "x"}

# --- what each litellm_params / model_info / settings key becomes when it does not map ---------------------------

PER_TARGET = "no per-target equivalent"
PARAM_NOTES: Mapping[str, str] = {
    "rpm": "no per-target limit (llmgw limits requests per team or key: [teams.NAME] rpm / [keys.NAME] rpm)",
    "tpm": "no per-target limit (llmgw limits tokens per team or key: [teams.NAME] tpm / [keys.NAME] tpm)",
    "timeout": f"{PER_TARGET} (server.timeout_s is per request, server.first_token_timeout_s per attempt)",
    "stream_timeout": f"{PER_TARGET} (server.first_token_timeout_s bounds the wait for a stream's first event)",
    "max_retries": f"{PER_TARGET} (retries are per alias: models.ALIAS.retries)",
    "extra_headers": "not copied (values may be secrets): set providers.NAME.headers by hand",
    "headers": "not copied (values may be secrets): set providers.NAME.headers by hand",
    "organization": "not copied: set providers.NAME.headers = { \"OpenAI-Organization\" = \"...\" } by hand",
    "drop_params": "no blanket equivalent: list the parameters to drop in providers.NAME.drop_params",
    "additional_drop_params": "no equivalent (providers.NAME.drop_params drops what a target cannot honour,"
                              " not what it can)",
}
PARAM_DEFAULT = "no equivalent (llmgw sends the client's request parameters as they are)"
MODEL_INFO_NOTES: Mapping[str, str] = {
    "id": "not needed (targets are named provider/model)",
    "mode": "not needed (an alias serves chat, embeddings and the other endpoints alike)",
    "base_model": "not needed (prices are looked up by target; add [prices] for a model the table lacks)",
}
COST_KEYS = {"input_cost_per_token": "input", "output_cost_per_token": "output",
              "cache_read_input_token_cost": "cached_input"}
ROUTER_NOTES: Mapping[str, str] = {
    "context_window_fallbacks": "no equivalent (llmgw falls back on failures another target may not have: 429,"
                                " 5xx, timeouts; a context-window 400 ends routing)",
    "content_policy_fallbacks": "no equivalent (a refused request is a 400 that ends routing)",
    "redis_host": "not imported: set state.shared = \"redis://HOST:PORT/0\" to share limits, budgets and cache",
    "redis_port": "not imported: set state.shared = \"redis://HOST:PORT/0\" to share limits, budgets and cache",
    "redis_password": "not imported: put the password in state.shared's URL by hand",
    "redis_url": "not imported: set state.shared to the redis:// URL by hand",
    "retry_policy": "no equivalent (models.ALIAS.retries retries every retryable failure)",
    "model_group_retry_policy": "no equivalent (models.ALIAS.retries retries every retryable failure)",
    "allowed_fails_policy": "no equivalent (routing.cooldown_failures counts every failure)",
}
GENERAL_NOTES: Mapping[str, str] = {
    "database_url": "no equivalent (llmgw keeps its request log, keys and spend in [state] url, SQLite)",
    "store_model_in_db": "no equivalent (models live in the profile)",
    "master_key": "",
}
LITELLM_NOTES: Mapping[str, str] = {
    "success_callback": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "failure_callback": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "callbacks": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "drop_params": "no blanket equivalent: list the parameters to drop in providers.NAME.drop_params",
    "max_budget": "no proxy-wide budget: budgets are per team or key ([teams.NAME] budget_usd)",
    "budget_duration": "no proxy-wide budget: budgets are per team or key ([teams.NAME] budget_usd)",
    "default_team_settings": "no equivalent (teams, their limits and budgets are [teams.NAME] tables)",
}

# Settings LiteLLM reads from router_settings or, in older configs, litellm_settings; router_settings wins.
ROUTER_KEYS = ("routing_strategy", "num_retries", "timeout", "request_timeout", "cooldown_time", "allowed_fails",
                "disable_cooldowns", "fallbacks", "default_fallbacks", "model_group_alias")

STRATEGIES: Mapping[str, tuple[str, str | None]] = {
    "simple-shuffle": ("loadbalance", None),
    "latency-based-routing": ("least-latency", None),
    "least-busy": ("loadbalance", "no equivalent of least-busy; its aliases load-balance (weighted random)"),
    "usage-based-routing": ("loadbalance", "no equivalent of usage-based routing; its aliases load-balance"),
    "usage-based-routing-v2": ("loadbalance", "no equivalent of usage-based routing; its aliases load-balance"),
    "cost-based-routing": ("loadbalance", "no equivalent of cost-based routing; its aliases load-balance"),
}
