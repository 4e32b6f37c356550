"""Pydantic models that describe the OpenAI and admin surfaces in FastAPI's OpenAPI document.

They exist for the docs only: requests never pass through them (the routes hand the raw ASGI
request to tidegate, which validates with msgspec and answers with OpenAI's error envelope instead
of FastAPI's 422). Every model allows extra fields because OpenAI's wire format keeps growing and
tidegate passes unknown request fields through to the upstream untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "Embedding",
    "EmbeddingList",
    "EmbeddingsRequest",
    "ErrorEnvelope",
    "Health",
    "ModelList",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: str = Field(description="`system`, `developer`, `user`, `assistant` or `tool`.")
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = Field(
        default=None, description="Send a last chunk with the whole request's token usage."
    )


class ChatCompletionRequest(_Open):
    """An OpenAI chat completion request; fields not listed pass through to the upstream."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"model": "light", "messages": [{"role": "user", "content": "Hello!"}]}]
        },
    )

    model: str = Field(description="A model name listed by `GET /v1/models`.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class ResponseMessage(_Open):
    role: str
    content: str | None = None


class Choice(_Open):
    index: int
    message: ResponseMessage
    finish_reason: str | None = None


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Open):
    """``chat.completion`` (blocking); a streamed answer is ``chat.completion.chunk`` events."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class EmbeddingsRequest(_Open):
    """An OpenAI embeddings request, answered by a configured embedder or embeddings upstream."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "default", "input": ["first text", "second text"]}]},
    )

    model: str = Field(description="An embedder under `embeddings:`, or a model of kind `embeddings`.")
    input: str | list[str] = Field(description="One text or a non-empty array of texts.")
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None, description="`base64`: little-endian float32 bytes, base64-encoded."
    )
    user: str | None = None


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_Open):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Open):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(_Open):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tidegate"


class ModelList(_Open):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(_Open):
    status: Literal["ok", "unavailable"]
    state: str
    in_flight: int


class ErrorDetail(_Open):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(_Open):
    """OpenAI's error envelope, which the official SDKs turn into typed exceptions."""

    error: ErrorDetail
