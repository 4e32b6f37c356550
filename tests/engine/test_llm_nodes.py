"""llm, question-classifier and parameter-extractor against the real Gateway and simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tidegate.engine import Conversation, RunLimits, Services, WorkflowRunner, compile_workflow
from tidegate.engine.nodes.classifier import QuestionClassifierNode

pytestmark = pytest.mark.usefixtures("no_leaks")

MODEL = {"provider": "langgenius/openai/openai", "name": "sim-small", "mode": "chat",
         "completion_params": {"temperature": 0.7, "max_tokens": 12}}


def llm(kit: Any, node_id: str = "llm", prompt: list[dict[str, Any]] | None = None, **data: Any) -> dict[str, Any]:
    prompt = prompt or [{"role": "system", "text": "You are terse."}, {"role": "user", "text": "{{#start.q#}}"}]
    return kit.node(node_id, "llm", "LLM", model=data.pop("model", MODEL), prompt_template=prompt,
                    context=data.pop("context", {"enabled": False, "variable_selector": []}),
                    vision={"enabled": False}, **data)


def runner(data: dict[str, Any], gateway: Any, **kwargs: Any) -> WorkflowRunner:
    return WorkflowRunner(compile_workflow(data), services=Services(llm=gateway, **kwargs), limits=RunLimits(timeout=20))


async def test_llm_tokens_stream_through_the_answer(kit: Any, gateway: Any) -> None:
    data = kit.dsl([kit.start("q"), llm(kit), kit.node("ans", "answer", "Answer", answer="A: {{#llm.text#}}")],
                   kit.chain("start", "llm", "ans"), mode="advanced-chat")
    events = await kit.collect(runner(data, gateway).run({"q": "hello"}, query="hello"))
    direct = await gateway.chat([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello"}],
                                model="sim-small", temperature=0.7, max_tokens=12)
    text = direct["choices"][0]["message"]["content"]
    chunks = [e for e in events if e.kind == "text_chunk"]
    assert chunks[0].text == "A: " and chunks[0].from_variable_selector == ["ans", "answer"]
    assert len(chunks) > 3 and all(c.from_variable_selector == ["llm", "text"] for c in chunks[1:])
    assert "".join(c.text for c in chunks) == "A: " + text
    order = [(e.kind, getattr(e, "node_id", None)) for e in events]
    # Live streaming: the first LLM token reached the answer before the LLM node finished.
    assert order.index(("text_chunk", None)) < order.index(("node_finished", "llm"))
    llm_done = next(e for e in events if e.kind == "node_finished" and e.node_id == "llm")
    assert llm_done.outputs["text"] == text
    assert llm_done.outputs["usage"]["completion_tokens"] == 12
    assert events[-1].total_tokens == llm_done.outputs["usage"]["total_tokens"] > 0
    assert events[-1].outputs == {"answer": "A: " + text}


async def test_unrelayed_llm_makes_a_plain_call(kit: Any, gateway: Any, sim: Any) -> None:
    data = kit.dsl([kit.start("q"), llm(kit), kit.tpl("t", "{{ x | upper }}", x=["llm", "text"]),
                    kit.end(o=["t", "output"])], kit.chain("start", "llm", "t", "end"))
    result = await runner(data, gateway).run_blocking({"q": "hi"})
    assert result.status == "succeeded" and result.outputs["o"].isupper()
    assert sim.stats["streams"] == 0


async def test_memory_window_context_and_query_template(kit: Any, gateway: Any) -> None:
    prompt = [{"role": "system", "text": "Context: {{#context#}}"}]
    node = llm(kit, prompt=prompt, context={"enabled": True, "variable_selector": ["start", "docs"]},
               memory={"window": {"enabled": True, "size": 1}, "query_prompt_template": "Q: {{#sys.query#}}"})
    start = kit.node("start", "start", "Start", variables=[{"variable": "docs", "type": "json_object"}])
    data = kit.dsl([start, node, kit.node("ans", "answer", "A", answer="{{#llm.text#}}")],
                   kit.chain("start", "llm", "ans"), mode="advanced-chat")
    history = [{"role": "user", "content": "old q"}, {"role": "assistant", "content": "old a"},
               {"role": "user", "content": "last q"}, {"role": "assistant", "content": "last a"}]
    conversation = Conversation(history=history, dialogue_count=2)
    events = await kit.collect(runner(data, gateway).run(
        {"docs": {"x": 1}}, query="now?", conversation=conversation))
    done = next(e for e in events if e.kind == "node_finished" and e.node_id == "llm")
    assert done.process_data["prompts"] == [
        {"role": "system", "content": 'Context: {"x": 1}'},
        {"role": "user", "content": "last q"},
        {"role": "assistant", "content": "last a"},
        {"role": "user", "content": "Q: now?"},
    ]


async def test_completion_mode_and_jinja_prompts(kit: Any, gateway: Any) -> None:
    completion = dict(MODEL, mode="completion")
    node = llm(kit, model=completion, prompt={"text": "Say {{#start.q#}}", "edition_type": "basic"})
    jinja = llm(kit, "j", prompt=[{"role": "user", "text": "", "edition_type": "jinja2", "jinja2_text": "Hi {{ who | upper }}"}],
                prompt_config={"jinja2_variables": [{"variable": "who", "value_selector": ["start", "q"]}]})
    data = kit.dsl([kit.start("q"), node, jinja, kit.end(a=["llm", "text"], b=["j", "text"])],
                   [kit.edge("start", "llm"), kit.edge("start", "j"), kit.edge("llm", "end"), kit.edge("j", "end")])
    events = await kit.collect(runner(data, gateway).run({"q": "ada"}))
    prompts = {e.node_id: e.process_data["prompts"] for e in events if e.kind == "node_finished" and e.node_id in ("llm", "j")}
    assert prompts == {"llm": [{"role": "user", "content": "Say ada"}], "j": [{"role": "user", "content": "Hi ADA"}]}
    assert events[-1].status == "succeeded"


async def test_upstream_failure_is_a_node_failure_and_default_value_handles_it(kit: Any, sim: Any) -> None:
    from tidegate import Gateway
    from tidegate.config import parse_config

    config = parse_config({"models": {"broken": {"url": sim.url, "model": "sim-small", "headers": {"X-Sim-Fault": "500"}}}})
    async with Gateway(config) as gw:
        broken = dict(MODEL, name="broken")
        data = kit.dsl([kit.start("q"), llm(kit, model=broken), kit.end(t=["llm", "text"])], kit.chain("start", "llm", "end"))
        failed = await runner(data, gw).run_blocking({"q": "x"})
        assert failed.status == "failed"
        assert failed.error.startswith("node `llm` (LLM) failed: ")
        assert "broken" in failed.error and "500" in failed.error
        data["workflow"]["graph"]["nodes"][1]["data"].update(
            error_strategy="default-value", default_value=[{"key": "text", "type": "string", "value": "sorry"}])
        handled = await runner(data, gw).run_blocking({"q": "x"})
        assert (handled.status, handled.outputs) == ("partial-succeeded", {"t": "sorry"})


async def test_stopping_mid_stream_aborts_the_upstream(kit: Any, sim: Any) -> None:
    from tidegate import Gateway
    from tidegate.config import parse_config

    config = parse_config({"models": {"slow": {"url": sim.url, "model": "sim-small",
                                               "headers": {"X-Sim-TPS": "20", "X-Sim-Tokens": "200"}}}})
    async with Gateway(config) as gw:
        data = kit.dsl([kit.start("q"), llm(kit, model=dict(MODEL, name="slow", completion_params={})),
                        kit.node("ans", "answer", "A", answer="{{#llm.text#}}")],
                       kit.chain("start", "llm", "ans"), mode="advanced-chat")
        run = runner(data, gw).start({"q": "long"}, query="long")
        async for event in run:
            if event.kind == "text_chunk":
                run.stop()
        assert run.result is not None and run.result.status == "stopped"
        for _ in range(100):
            if sim.stats["aborted"]:
                break
            await asyncio.sleep(0.01)
        assert sim.stats["aborted"] == 1


def classifier(kit: Any, classes: list[dict[str, str]]) -> dict[str, Any]:
    return kit.dsl(
        [kit.start("q"),
         kit.node("qc", "question-classifier", "Classify", model=MODEL, query_variable_selector=["start", "q"],
                  classes=classes, instruction="Be careful with {{#start.q#}}"),
         kit.end("e1", c=["qc", "class_name"]), kit.end("e2", c=["qc", "class_id"])],
        [kit.edge("start", "qc"), kit.edge("qc", "e1", classes[0]["id"]), kit.edge("qc", "e2", classes[1]["id"])],
    )


async def test_question_classifier_branches_on_the_class(kit: Any, gateway: Any) -> None:
    classes = [{"id": "1", "name": "refund"}, {"id": "2", "name": "shipping"}]
    events = await kit.collect(runner(classifier(kit, classes), gateway).run({"q": "where is my parcel"}))
    done = next(e for e in events if e.kind == "node_finished" and e.node_id == "qc")
    # The simulator answers with words, not JSON: the classifier falls back to the first class.
    assert done.outputs["class_id"] == "1" and done.outputs["class_name"] == "refund"
    assert "Be careful with where is my parcel" in done.process_data["prompts"][0]["content"]
    ran = {e.node_id for e in events if e.kind == "node_started"}
    assert "e1" in ran and "e2" not in ran


def test_classifier_reads_json_names_and_words(kit: Any) -> None:
    workflow = compile_workflow(classifier(kit, [{"id": "a", "name": "refund"}, {"id": "b", "name": "shipping"}]))
    node = workflow.nodes["qc"]
    assert isinstance(node, QuestionClassifierNode)
    assert node._pick('{"category_id": "b", "category_name": "x"}').id == "b"
    assert node._pick('```json\n{"category_name": "shipping"}\n```').id == "b"
    assert node._pick("I think this is about Shipping.").id == "b"
    assert node._pick("no idea").id == "a"


def extractor(kit: Any, mode: str) -> dict[str, Any]:
    params = [
        {"name": "city", "type": "string", "description": "city", "required": True},
        {"name": "days", "type": "number", "description": "how many days", "required": False},
        {"name": "unit", "type": "select", "options": ["c", "f"], "description": "unit", "required": False},
        {"name": "tags", "type": "array[string]", "description": "tags", "required": False},
    ]
    return kit.dsl(
        [kit.start("q"),
         kit.node("pe", "parameter-extractor", "Extract", model=MODEL, query=["start", "q"], parameters=params,
                  reasoning_mode=mode, instruction=""),
         kit.end(city=["pe", "city"], days=["pe", "days"], unit=["pe", "unit"], tags=["pe", "tags"],
                 ok=["pe", "__is_success"], why=["pe", "__reason"])],
        kit.chain("start", "pe", "end"),
    )


async def test_parameter_extractor_function_call(kit: Any, gateway: Any) -> None:
    query = 'Weather please. call:extract_parameters({"city": "Paris", "days": "3", "unit": "c", "tags": ["x"]})'
    result = await runner(extractor(kit, "function_call"), gateway).run_blocking({"q": query})
    assert result.outputs == {"city": "Paris", "days": 3, "unit": "c", "tags": ["x"], "ok": 1, "why": None}
    bad = 'call:extract_parameters({"days": 2, "unit": "kelvin"})'
    result = await runner(extractor(kit, "function_call"), gateway).run_blocking({"q": bad})
    assert result.outputs["ok"] == 0
    assert result.outputs["why"] == "required parameter `city` was not found"
    assert result.outputs["unit"] is None and result.outputs["days"] == 2


async def test_parameter_extractor_prompt_mode(kit: Any, gateway: Any) -> None:
    events = await kit.collect(runner(extractor(kit, "prompt"), gateway).run({"q": "Paris for 3 days"}))
    done = next(e for e in events if e.kind == "node_finished" and e.node_id == "pe")
    assert done.status == "succeeded"
    assert "JSON schema" in done.process_data["prompts"][0]["content"]
    # The simulator does not answer in JSON, which is reported, not raised.
    assert done.outputs["__is_success"] == 0 and done.outputs["__reason"] == "the model's answer is not JSON"
