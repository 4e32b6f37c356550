"""The ReAct fallback: tool use through the prompt, for models without native tool calling.

The model is shown the tools and a fixed format (``Thought`` / ``Action`` / ``Action Input``,
then ``Final Answer``); we parse its text, run the one action it names and send the result back as
an ``Observation:`` message. Models drift from the format, so the parser is lenient (code fences,
a JSON ``{"action", "action_input"}`` blob as Dify's parser accepts, non-JSON input) and text that
names no action is taken as the final answer rather than an error. While streaming, only what
follows ``Final Answer:`` reaches the client (:class:`FinalAnswerFilter`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from .tools import Tool

__all__ = ["FINAL_MARKER", "FinalAnswerFilter", "ReactStep", "observation_message", "parse_react", "react_prompt"]

FINAL_MARKER = "Final Answer:"
_ACTION = re.compile(r"Action\s*\d*\s*:\s*(.+?)\s*\n\s*Action\s*\d*\s*Input\s*\d*\s*:\s*(.*)", re.DOTALL)
_FINAL = re.compile(r"Final\s+Answer\s*:\s*(.*)", re.DOTALL | re.IGNORECASE)
_THOUGHT = re.compile(
    r"Thought[ \t]*:[ \t]*(.*?)(?=\n\s*(?:Action|Final\s+Answer)\b|\Z)", re.DOTALL | re.IGNORECASE
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_decoder = json.JSONDecoder()


class ReactStep(msgspec.Struct, kw_only=True, gc=False):
    thought: str = ""
    action: str | None = None
    arguments: str = "{}"
    """The action input as JSON object text (non-JSON input is wrapped as ``{"input": …}``)."""
    final: str | None = None


def react_prompt(instruction: str, tools: Sequence[Tool]) -> str:
    lines = [instruction.strip(), ""] if instruction.strip() else []
    lines.append("You can use these tools:")
    for tool in tools:
        schema = msgspec.json.encode(tool.parameters).decode()
        lines.append(f"- {tool.name}: {tool.description} Arguments (JSON schema): {schema}")
    names = ", ".join(tool.name for tool in tools)
    lines += [
        "",
        "Answer in exactly this format:",
        "Thought: what to do next",
        f"Action: the tool to use, one of [{names}]",
        "Action Input: the tool's arguments as one JSON object",
        "Then stop and wait: the result comes back as `Observation: ...`. Repeat Thought/Action as needed.",
        "When you know the answer:",
        "Thought: I now know the final answer",
        f"{FINAL_MARKER} the answer for the user",
    ]
    return "\n".join(lines)


def observation_message(output: str) -> dict[str, Any]:
    return {"role": "user", "content": f"Observation: {output}"}


def _json_object(text: str) -> Any:
    text = text.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = _decoder.raw_decode(text, start)
    except ValueError:
        return None
    return value


def parse_react(text: str) -> ReactStep:
    """One model turn in ReAct form → the action to take, or the final answer."""
    text = text.split("\nObservation:", 1)[0]  # the model must not write observations itself
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group(1).strip() if thought_match else ""
    blob = _json_object(text) if "action" in text and "Action:" not in text else None
    if isinstance(blob, dict) and "action" in blob:
        action = str(blob["action"]).strip()
        given = blob.get("action_input", {})
        if action.lower() in ("final answer", "final_answer"):
            final = given if isinstance(given, str) else msgspec.json.encode(given).decode()
            return ReactStep(thought=thought, final=final)
        return ReactStep(thought=thought, action=action, arguments=_arguments(given))
    action_match = _ACTION.search(text)
    final_match = _FINAL.search(text)
    if action_match and (final_match is None or action_match.start() < final_match.start()):
        name = action_match.group(1).strip().strip("`\"'")
        raw = action_match.group(2).strip()
        value = _json_object(raw)
        payload: Any = value if isinstance(value, dict) else (raw.strip("`\"' \n") or {})
        return ReactStep(thought=thought, action=name, arguments=_arguments(payload))
    if final_match:
        return ReactStep(thought=thought, final=final_match.group(1).strip())
    return ReactStep(thought=thought, final=text.strip())


def _arguments(payload: Any) -> str:
    if isinstance(payload, str):
        payload = {"input": payload} if payload else {}
    if not isinstance(payload, dict):
        payload = {"input": payload}
    return msgspec.json.encode(payload).decode()


class FinalAnswerFilter:
    """Passes on only the streamed text after ``Final Answer:`` (and nothing when an action
    comes first); :meth:`rest` gives what is left to show once the turn is complete."""

    __slots__ = ("_acting", "_sent", "_start", "text")

    def __init__(self) -> None:
        self.text = ""
        self._start = -1
        self._sent = 0
        self._acting = False

    def feed(self, delta: str) -> str:
        self.text += delta
        if self._acting:
            return ""
        if self._start < 0:
            match = _FINAL.search(self.text)
            action = _ACTION.search(self.text) or re.search(r"\bAction\s*:", self.text)
            if action and (match is None or action.start() < match.start()):
                self._acting = True
                return ""
            if match is None:
                return ""
            self._start = match.start(1)
            self._sent = self._start
        while self._sent == self._start < len(self.text) and self.text[self._start].isspace():
            self._start += 1
            self._sent = self._start
        end = self.text.find("\nObservation:", self._start)
        visible_end = len(self.text) if end < 0 else end
        # Hold back a possible partial "\nObservation:" at the tail.
        tail = self.text.rfind("\n", self._sent, visible_end)
        if end < 0 and tail >= 0 and "\nObservation:".startswith(self.text[tail:visible_end]):
            visible_end = tail
        piece = self.text[self._sent : visible_end]
        self._sent = max(self._sent, visible_end)
        return piece

    def rest(self, step: ReactStep) -> str:
        """Text still owed to the client when the turn ends as ``step``."""
        if step.action is not None:
            return ""
        final = step.final or ""
        if self._start < 0:
            return final
        shown = self.text[self._start : self._sent]
        return final[len(shown) :] if final.startswith(shown) else ""
