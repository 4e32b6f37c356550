"""Pydantic models that describe the Dify service API (workflow apps) in FastAPI's OpenAPI document.

Docs only, like ``schemas.py``: tidegate decodes and answers these requests itself, with Dify's
error envelope ``{code, message, status}``. Field names and meanings follow Dify's service API so
the docs read like Dify's own; extra fields are allowed because Dify keeps adding some.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AppInfo",
    "AppParameters",
    "ChatMessageRequest",
    "ChatMessageResponse",
    "Conversation",
    "ConversationPage",
    "DifyError",
    "MessagePage",
    "RenameRequest",
    "StopRequest",
    "StopResponse",
    "UserBody",
    "VariablePage",
    "WorkflowRunRequest",
    "WorkflowRunResponse",
]

ResponseMode = Literal["blocking", "streaming"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class WorkflowRunRequest(_Open):
    """Run the workflow app selected by the Bearer app key."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"inputs": {"name": "Ada"}, "response_mode": "blocking", "user": "user-123"}]
        },
    )

    inputs: dict[str, Any] = Field(default_factory=dict, description="Values of the start node's variables.")
    response_mode: ResponseMode = Field(
        default="blocking", description="`streaming`: server-sent events, one per engine event."
    )
    user: str = Field(description="Who runs it; scopes conversations, canaries and limits.")
    files: list[dict[str, Any]] | None = None


class WorkflowRunData(_Open):
    id: str
    workflow_id: str
    status: str = Field(description="`succeeded`, `failed`, `stopped` or `partial-succeeded`.")
    outputs: dict[str, Any] | None = None
    error: str | None = None
    elapsed_time: float | None = None
    total_tokens: int | None = None
    total_steps: int | None = None
    created_at: int
    finished_at: int | None = None


class WorkflowRunResponse(_Open):
    task_id: str
    workflow_run_id: str
    data: WorkflowRunData


class ChatMessageRequest(_Open):
    """Send a message to the chatflow app selected by the Bearer app key."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"query": "Hello!", "inputs": {}, "response_mode": "streaming", "user": "user-123"}]
        },
    )

    query: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    response_mode: ResponseMode = "blocking"
    user: str
    conversation_id: str | None = Field(default=None, description="Continue this conversation.")
    files: list[dict[str, Any]] | None = None
    auto_generate_name: bool = True


class ChatMessageResponse(_Open):
    event: Literal["message"] = "message"
    task_id: str
    id: str
    message_id: str
    conversation_id: str
    mode: Literal["advanced-chat"] = "advanced-chat"
    answer: str
    metadata: dict[str, Any]
    created_at: int


class StopRequest(_Open):
    user: str = Field(description="The user that started the task.")


class StopResponse(_Open):
    result: Literal["success"] = "success"


class UserBody(_Open):
    user: str | None = Field(default=None, description="The conversation's user (default `DEFAULT-USER`).")


class RenameRequest(UserBody):
    name: str | None = None
    auto_generate: bool = Field(default=False, description="Name it from its first message instead.")


class Conversation(_Open):
    id: str
    name: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    status: str = "normal"
    introduction: str = ""
    created_at: int
    updated_at: int


class _Page(_Open):
    limit: int
    has_more: bool


class ConversationPage(_Page):
    data: list[Conversation]


class MessagePage(_Page):
    data: list[dict[str, Any]] = Field(description="Messages: `id`, `query`, `answer`, `created_at`, ….")


class VariablePage(_Page):
    data: list[dict[str, Any]] = Field(description="Variables: `id`, `name`, `value_type`, `value`, ….")


class AppInfo(_Open):
    name: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    mode: str
    author_name: str = ""


class AppParameters(_Open):
    opening_statement: str = ""
    suggested_questions: list[str] = Field(default_factory=list)
    user_input_form: list[dict[str, Any]] = Field(default_factory=list)
    file_upload: dict[str, Any] = Field(default_factory=dict)
    system_parameters: dict[str, Any] = Field(default_factory=dict)


class DifyError(_Open):
    """Dify's error envelope (what Dify's clients raise on)."""

    code: str = Field(description="e.g. `unauthorized`, `invalid_param`, `not_chat_app`.")
    message: str
    status: int
