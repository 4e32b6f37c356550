"""Relay answer text in path order while the nodes behind it are still running.

Each response node (answer in a chatflow, end in a workflow) has a template of literal text and
variable references. Its session opens once the node is certain to run: every branch, container or
earlier response edge on some path from the start to it has been taken. Sessions then speak one at
a time, in the order they opened: literals immediately, a streamed variable (an LLM's ``text``)
chunk by chunk as the LLM produces it, any other variable once its node has finished. Chunks that
arrive before their session speaks are buffered, so nothing is lost or reordered.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from ..dsl.refs import RESERVED_SCOPES, Segment, Selector
from .events import TextChunk
from .graph import Edge, Graph
from .pool import MISSING, VariablePool
from .template import to_text

__all__ = ["StreamCoordinator"]


class _Session:
    __slots__ = ("index", "literal_selector", "node_id", "positions", "segments")

    def __init__(self, node_id: str, segments: tuple[Segment, ...], literal_selector: list[str]) -> None:
        self.node_id = node_id
        self.segments = segments
        self.index = 0
        self.positions: dict[Selector, int] = {}
        self.literal_selector = literal_selector


class StreamCoordinator:
    """Per-run state of the ordered answer stream for the top-level graph."""

    def __init__(self, graph: Graph, pool: VariablePool, emit: Callable[[Any], None]) -> None:
        self._graph = graph
        self._pool = pool
        self._emit = emit
        self._templates: dict[str, tuple[Segment, ...]] = {}
        self._streamed: set[Selector] = set()
        for node_id in graph.response_nodes:
            segments: tuple[Segment, ...] = graph.nodes[node_id].stream_template  # type: ignore[attr-defined]
            self._templates[node_id] = segments
            for segment in segments:
                if isinstance(segment, tuple) and segment[0] in graph.nodes:
                    owner = graph.nodes[segment[0]]
                    if len(segment) == 2 and segment[1] in owner.streams:
                        self._streamed.add(segment)
        # Assigners writing a variable an answer says must finish before that answer speaks.
        spoken = {tuple(seg[:2]) for segs in self._templates.values() for seg in segs if isinstance(seg, tuple)}
        self._writers = {
            node.id for node in graph.nodes.values() if spoken & getattr(node, "targets", frozenset())
        }
        self._buffers: dict[Selector, list[str]] = defaultdict(list)
        self._closed: set[str] = set()
        self._reach: set[str] = set()
        self._taken: set[str] = set()
        self._sessions: deque[_Session] = deque()
        self._opened: set[str] = set()
        self.wanted: frozenset[Selector] = frozenset(self._streamed)
        self._extend_reach([graph.root])

    # -- graph progress ---------------------------------------------------------------------------

    def edge_taken(self, edge: Edge) -> None:
        self._taken.add(edge.id)
        if edge.source in self._reach and edge.target not in self._reach and self._blocking(edge):
            self._extend_reach([edge.target])
            self._flush()

    def chunk(self, node_id: str, name: str, text: str) -> None:
        selector = (node_id, name)
        if selector in self._streamed:
            self._buffers[selector].append(text)
            self._flush()

    def node_done(self, node_id: str) -> None:
        """The node finished, failed or was skipped: its values are final (or absent)."""
        self._closed.add(node_id)
        self._flush()

    def finish(self) -> None:
        """End of a successful run: every node is final, so every open session can complete."""
        self._closed.update(self._graph.nodes)
        self._flush()

    # -- internals --------------------------------------------------------------------------------

    def _blocking(self, edge: Edge) -> bool:
        source = self._graph.nodes[edge.source]
        return (
            source.is_branch
            or source.is_container
            or source.is_response
            or source.id in self._writers
            or source.policy.error_strategy == "fail-branch"  # type: ignore[attr-defined]
        )

    def _extend_reach(self, starts: list[str]) -> None:
        stack = [s for s in starts if s not in self._reach]
        self._reach.update(stack)
        opened: list[str] = []
        while stack:
            node_id = stack.pop()
            if node_id in self._templates and node_id not in self._opened:
                opened.append(node_id)
            for edge in self._graph.out_edges.get(node_id, ()):
                if edge.target in self._reach:
                    continue
                if edge.id in self._taken or not self._blocking(edge):
                    self._reach.add(edge.target)
                    stack.append(edge.target)
        for node_id in sorted(opened, key=self._graph.order.__getitem__):
            self._opened.add(node_id)
            literal = [node_id, "answer"]
            self._sessions.append(_Session(node_id, self._templates[node_id], literal))

    def _flush(self) -> None:
        while self._sessions:
            session = self._sessions[0]
            if not self._advance(session):
                return
            self._sessions.popleft()

    def _advance(self, session: _Session) -> bool:
        """Speak as much of the session as is known; True when it is complete."""
        segments = session.segments
        while session.index < len(segments):
            segment = segments[session.index]
            if isinstance(segment, str):
                self._emit(TextChunk(text=segment, from_variable_selector=session.literal_selector))
                session.index += 1
                continue
            owner = segment[0]
            if segment in self._streamed:
                buffer = self._buffers[segment]
                position = session.positions.get(segment, 0)
                for piece in buffer[position:]:
                    self._emit(TextChunk(text=piece, from_variable_selector=list(segment)))
                session.positions[segment] = len(buffer)
                if owner not in self._closed:
                    return False
                session.index += 1
                if buffer:
                    continue
                # The node produced its value without streaming it (e.g. a default value).
            elif owner not in RESERVED_SCOPES and owner in self._graph.nodes:
                if owner not in self._closed:
                    return False
                session.index += 1
            else:
                session.index += 1
            value = self._pool.get(segment)
            if value is not MISSING and value is not None:
                text = to_text(value)
                if text:
                    self._emit(TextChunk(text=text, from_variable_selector=list(segment)))
        return True
