"""The language model as a Dagster resource: any OpenAI-compatible endpoint through the openai SDK."""

import os
from dataclasses import dataclass

import dagster as dg
from openai import OpenAI


@dataclass(frozen=True)
class Completion:
    """A chat completion's text and token use."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class LlmResource(dg.ConfigurableResource):
    """Chat completions from ``base_url`` (OpenRouter by default) with the key read from ``api_key_env``.

    The key is read from the environment at call time, so it never appears in resource config, run config
    or the UI. Timeout in seconds; the openai SDK retries timeouts, 429 and 5xx ``max_retries`` times with
    exponential backoff before raising ``openai.APIError`` subclasses.
    """

    base_url: str = "https://openrouter.ai/api/v1"
    api_key_env: str = "LLM_API_KEY"
    model: str = "openai/gpt-4o-mini"
    temperature: float = 0.3
    max_tokens: int = 1000
    timeout_s: float = 30.0
    max_retries: int = 2

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def configured(self) -> bool:
        """True when a key is set; without one the pipeline composes deterministic notes."""
        return self.api_key is not None

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One chat completion. Raises ``RuntimeError`` without a key, ``openai.APIError`` on failure."""
        key = self.api_key
        if key is None:
            raise RuntimeError(f"no LLM key: set {self.api_key_env}")
        client = OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=self.max_retries)
        response = client.chat.completions.create(
            model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
        )
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        usage = response.usage
        return Completion(text=text, model=response.model or self.model,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0)
