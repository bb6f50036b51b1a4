"""`pz2 serve`: the OpenAI-compatible API, driven by the official `openai` client and raw HTTP against
a real uvicorn server on 127.0.0.1, over the tiny hybrid workspace (random adapters: each model
answers differently, so a mix-up shows)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import openai
import pytest
from conftest import live_server, wait_healthy
from prometheus_client.parser import text_string_to_metric_families

from pz2.config import ServingConfig
from pz2.runtime.assistant import Assistant
from pz2.runtime.turn import Options
from pz2.serving.app import create_app, exposure_warning
from pz2.serving.errors import OverloadedError
from pz2.serving.scheduler import FairScheduler

QUESTION = "What is the difference between a list and a tuple in Python?"
MODELS = ("unified", "qna-specialist", "technical-specialist")


def _app(ws, serving: ServingConfig | None = None, api_key: str | None = None, load=None):
    return create_app(load or (lambda: Assistant.from_config(ws, ws.model_config())), serving or ServingConfig(), "tiny-base", api_key)


def _client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def raw_ws(serve_ws, tmp_path_factory):
    """The served workspace streaming token by token (`end_on_sentence: false`): OpenAI's own semantics (max_tokens,
    stop, logprobs, a client leaving mid-answer) over tiny random models, whose text has no sentence to end at."""
    from conftest import copy_workspace

    ws = copy_workspace(serve_ws, tmp_path_factory.mktemp("raw"))
    path = ws.configs / "model_config.yaml"
    path.write_text(path.read_text().replace("end_on_sentence: true", "end_on_sentence: false")
                    .replace("parallel: 1", "parallel: 4"))   # a server for concurrent clients decodes them together
    assert ws.model_config().runtime.engine.end_on_sentence is False
    assert ws.model_config().runtime.engine.parallel == 4
    return ws


@pytest.fixture(scope="module")
def api(raw_ws):
    app = _app(raw_ws)
    with live_server(app) as url:
        wait_healthy(url)
        yield SimpleNamespace(url=url, app=app, client=_client(url), ws=raw_ws)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _sum(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and all((k, x) in ls for k, x in labels.items()))


def test_models_lists_the_router_and_the_adapters_with_their_parent(api) -> None:
    cards = api.client.models.list().data
    assert [c.id for c in cards] == ["pz2-hybrid", *MODELS]
    assert [c.parent for c in cards] == [None, "tiny-base", "tiny-base", "tiny-base"]
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok"}


def test_plain_and_streaming_answers_agree_with_the_assistant_in_process(api) -> None:
    question = "How do I install packages with pip?"
    plain = api.client.chat.completions.create(model="pz2-hybrid", messages=_user(question))
    choice = plain.choices[0]
    assert plain.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert plain.usage.prompt_tokens > 20 and plain.usage.completion_tokens > 0
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    record = plain.model_extra["pz2"]
    assert {"route", "reason", "confidence", "complexity", "specialist_state", "sources"} <= set(record)
    assistant = api.app.state.service.assistant
    alone = assistant.ask(question, options=Options(history=(), provisional=False))
    assert choice.message.content == alone.answer and record["route"] == alone.route

    chunks = list(api.client.chat.completions.create(model="pz2-hybrid", messages=_user(question), stream=True,
                                                     stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == choice.message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].model_extra["pz2"]["route"] == record["route"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert len({c.id for c in chunks}) == 1

    with httpx.stream("POST", f"{api.url}/v1/chat/completions", timeout=60,
                      json={"model": "unified", "messages": _user(question), "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1]), "usage only when include_usage asks"


def test_multi_turn_history_reaches_the_prompt_and_expert_mode_refers_back(api) -> None:
    c = api.client.chat.completions
    alone = c.create(model="unified", messages=_user("What is my name?"))
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Nice to meet you, Ada."}]
    with_history = c.create(model="unified", messages=[*history, *_user("What is my name?")])
    assert with_history.usage.prompt_tokens > alone.usage.prompt_tokens + 10
    assistant = api.app.state.service.assistant
    expected = assistant.engine.generate("What is my name?", assistant.engine.unified).text
    assert alone.choices[0].message.content == expected
    assert with_history.choices[0].message.content == assistant.engine.stream(
        "What is my name?", assistant.engine.unified, history=history).text

    first = c.create(model="pz2-hybrid", messages=_user(QUESTION))
    follow = c.create(model="pz2-hybrid", messages=[*_user(QUESTION), {"role": "assistant",
                                                    "content": first.choices[0].message.content},
                                                    *_user("yes, expert mode please")])
    record = follow.model_extra["pz2"]
    assert (record["route"], record["reason"], record["question"]) == ("specialist", "explicit_request", QUESTION)
    direct = c.create(model="pz2-hybrid", messages=_user(QUESTION), extra_body={"expert": True})
    assert direct.model_extra["pz2"]["specialist"] == record["specialist"]
    assert follow.choices[0].message.content == direct.choices[0].message.content
    assert follow.usage.prompt_tokens == direct.usage.prompt_tokens, "the re-asked question, without its first answer"

    system = c.create(model="unified", messages=[{"role": "system", "content": "Answer in one word."},
                                                  *_user("What is my name?")])
    assert system.usage.prompt_tokens < alone.usage.prompt_tokens, "a system message replaces the configured one"


def test_a_long_conversation_drops_its_oldest_turns_never_the_system_or_last(api) -> None:
    turns = []
    for i in range(8):
        turns += [{"role": "user", "content": f"Question {i}: " + "tell me about DNS servers " * 40},
                  {"role": "assistant", "content": "DNS maps names to addresses. " * 40}]
    r = api.client.chat.completions.create(model="unified", messages=[{"role": "system", "content": "Be brief."},
                                                                      *turns, *_user("And now?")])
    record = r.model_extra["pz2"]
    assert record["dropped_messages"] >= 2 and record["dropped_messages"] % 2 == 0
    engine = api.app.state.service.assistant.engine
    assert r.usage.prompt_tokens + 12 <= engine.context_length
    kept = turns[record["dropped_messages"]:]
    assert r.usage.prompt_tokens == len(engine.prompt("And now?", kept, "Be brief."))


def test_sampling_seed_stop_max_tokens_and_logprobs_are_honoured(api) -> None:
    c = api.client.chat.completions
    sampled = [c.create(model="unified", messages=_user("Tell me a story."), temperature=1.0, top_p=0.9, seed=7)
               .choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]
    greedy = c.create(model="unified", messages=_user("Tell me a story.")).choices[0].message.content
    others = {c.create(model="unified", messages=_user("Tell me a story."), temperature=1.5, seed=s)
              .choices[0].message.content for s in range(3)}
    assert others != {greedy}, "sampling changes the answer"

    short = c.create(model="unified", messages=_user("Tell me a story."), max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"

    words = greedy.split()
    stop = next(w for w in words[1:] if greedy.find(w) > 0)
    cut = c.create(model="unified", messages=_user("Tell me a story."), stop=[stop])
    assert cut.choices[0].message.content == greedy[: greedy.find(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"

    scored = c.create(model="unified", messages=_user("Tell me a story."), logprobs=True, top_logprobs=3)
    content = scored.choices[0].logprobs.content
    assert len(content) == scored.usage.completion_tokens
    assert all(len(t.top_logprobs) == 3 and t.logprob == t.top_logprobs[0].logprob <= 0 for t in content)
    assert "".join(t.token for t in content).strip() == greedy


BAD = [
    ("invalid json", b"{not json", 400, None, "invalid_json"),
    ("no messages", {"model": "pz2-hybrid"}, 400, "messages", None),
    ("empty messages", {"model": "pz2-hybrid", "messages": []}, 400, "messages", None),
    ("no model", {"messages": _user("hi")}, 400, "model", None),
    ("bad role", {"model": "pz2-hybrid", "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role", None),
    ("temperature", {"model": "pz2-hybrid", "messages": _user("hi"), "temperature": 5}, 400, "temperature", None),
    ("two choices", {"model": "pz2-hybrid", "messages": _user("hi"), "n": 2}, 400, "n", None),
    ("max_tokens", {"model": "pz2-hybrid", "messages": _user("hi"), "max_tokens": 0}, 400, "max_tokens", None),
    ("five stops", {"model": "pz2-hybrid", "messages": _user("hi"), "stop": list("abcde")}, 400, "stop", None),
    ("last is the assistant's", {"model": "pz2-hybrid", "messages": [*_user("hi"),
                                 {"role": "assistant", "content": "hello"}]}, 400, None, None),
    ("top_logprobs alone", {"model": "pz2-hybrid", "messages": _user("hi"), "top_logprobs": 2}, 400, None, None),
    ("image part", {"model": "pz2-hybrid", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, "messages.0.content", None),
    ("too long", {"model": "pz2-hybrid", "messages": _user("word " * 3000)}, 400, "messages", "context_length_exceeded"),
    ("unknown model", {"model": "gpt-9", "messages": _user("hi")}, 404, "model", "model_not_found"),
    ("too large", {"model": "pz2-hybrid", "messages": _user("x" * 600_000)}, 413, None, "body_too_large"),
]


def test_bad_requests_get_an_openai_error_body_and_never_reach_the_model(api) -> None:
    before = _metrics(api.url)
    log = api.app.state.service.assistant.log.path
    lines = log.read_text().count("\n") if log.exists() else 0
    for name, body, status, param, code in BAD:
        kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) \
            else {"json": body}
        r = httpx.post(f"{api.url}/v1/chat/completions", timeout=30, **kwargs)
        assert r.status_code == status, (name, r.text)
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], name
        assert error["param"] == param, (name, error)
        if code:
            assert error["code"] == code, (name, error)
    assert httpx.get(f"{api.url}/v1/nothing").json()["error"]["code"] == 404
    assert httpx.get(f"{api.url}/v1/chat/completions").status_code == 405
    with pytest.raises(openai.NotFoundError):
        api.client.chat.completions.create(model="gpt-9", messages=_user("hi"))
    after = _metrics(api.url)
    assert _sum(after, "pz2_route_decisions_total") == _sum(before, "pz2_route_decisions_total")
    assert _sum(after, "pz2_generation_tokens_total") == _sum(before, "pz2_generation_tokens_total")
    assert (log.read_text().count("\n") if log.exists() else 0) == lines, "no bad request became a turn"
    assert _sum(after, "pz2_requests_total", status="400") - _sum(before, "pz2_requests_total", status="400") == 13


def test_metrics_in_prometheus_text_format_with_conventional_names(api) -> None:
    api.client.chat.completions.create(model="pz2-hybrid", messages=_user(QUESTION), extra_body={"expert": True})
    list(api.client.chat.completions.create(model="unified", messages=_user("hi"), stream=True))
    m = _metrics(api.url)
    assert _sum(m, "pz2_requests_total", model="pz2-hybrid", status="200") >= 1
    assert _sum(m, "pz2_requests_total", model="unified", status="200") >= 1
    assert _sum(m, "pz2_time_to_first_token_seconds_count", model="unified") >= 1
    assert _sum(m, "pz2_e2e_request_latency_seconds_count", model="pz2-hybrid") >= 1
    assert _sum(m, "pz2_route_decisions_total", route="specialist", reason="explicit_request") >= 1
    assert _sum(m, "pz2_adapter_loads_total") >= 1 and _sum(m, "pz2_adapter_load_seconds_count") >= 1
    assert _sum(m, "pz2_pool_memory_bytes") > 0 and _sum(m, "pz2_pool_memory_budget_bytes") > 0
    assert _sum(m, "pz2_requests_running") == 0 and _sum(m, "pz2_requests_waiting") == 0
    assert _sum(m, "pz2_generation_tokens_total") > 0 and _sum(m, "pz2_prompt_tokens_total") > 0


def test_concurrent_clients_on_different_models_never_see_another_adapter(api) -> None:
    c = api.client.chat.completions
    questions = ("How do I install packages with pip?", "hello there", QUESTION)
    baseline = {(m, q): c.create(model=m, messages=_user(q)).choices[0].message.content
                for m in MODELS for q in questions}
    for q in questions:
        assert len({baseline[(m, q)] for m in MODELS}) == 3, "each adapter answers differently"
    jobs = [(m, q, stream) for m in MODELS for q in questions for stream in (False, True)] * 2
    random.Random(0).shuffle(jobs)

    def run(job: tuple[str, str, bool]) -> str:
        model, question, stream = job
        if not stream:
            return c.create(model=model, messages=_user(question)).choices[0].message.content
        pieces = c.create(model=model, messages=_user(question), stream=True)
        return "".join(ch.choices[0].delta.content or "" for ch in pieces if ch.choices).strip()

    decoder = api.app.state.service.assistant.engine.decoder
    widths, decode = [], decoder._decode
    decoder._decode = lambda parts: widths.append(len(parts)) or decode(parts)   # answers per llama.cpp call
    try:
        with ThreadPoolExecutor(max_workers=9) as pool:
            answers = list(pool.map(run, jobs))
    finally:
        del decoder._decode
    assert [baseline[(m, q)] for m, q, _ in jobs] == answers
    assert max(widths) > 1, "the server decoded the concurrent answers one at a time"


def test_health_is_503_while_loading_and_when_the_load_failed(serve_ws) -> None:
    gate = threading.Event()

    def slow() -> Assistant:
        gate.wait(60)
        return Assistant.from_config(serve_ws, serve_ws.model_config())

    with live_server(_app(serve_ws, load=slow)) as url:
        r = httpx.get(f"{url}/health")
        assert (r.status_code, r.json()) == (503, {"status": "loading"})
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "pz2-hybrid", "messages": _user("hi")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        gate.set()
        wait_healthy(url)

    def broken() -> Assistant:
        raise RuntimeError("the classifier file is damaged")

    with live_server(_app(serve_ws, load=broken)) as url:
        deadline = time.monotonic() + 10
        while (r := httpx.get(f"{url}/health")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 503 and r.json() == {"status": "failed", "error": "the classifier file is damaged"}
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "pz2-hybrid", "messages": _user("hi")})
        assert r.status_code == 503 and "damaged" in r.json()["error"]["message"]


def test_api_key_is_required_and_compared_when_set(serve_ws) -> None:
    with live_server(_app(serve_ws, api_key="s3cret")) as url:
        wait_healthy(url)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = httpx.get(f"{url}/v1/models", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", headers
        with pytest.raises(openai.AuthenticationError):
            _client(url, "wrong").chat.completions.create(model="unified", messages=_user("hi"))
        good = _client(url, "s3cret")
        assert good.chat.completions.create(model="unified", messages=_user("hi")).choices[0].message.role == "assistant"
        assert httpx.get(f"{url}/health").status_code == 200, "health stays open for orchestrators"
    assert exposure_warning("0.0.0.0", None) and exposure_warning("192.168.1.5", None)
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("localhost", None) is None
    assert exposure_warning("0.0.0.0", "key") is None


def test_a_full_queue_answers_429_and_waiting_requests_are_served_in_order(serve_ws) -> None:
    """The engine's lock, held by the test, keeps the one running request from finishing."""
    app = _app(serve_ws, ServingConfig(max_running=1, max_waiting=2, retry_after_s=3, max_tokens=5))
    with live_server(app) as url:
        wait_healthy(url)
        lock = app.state.service.assistant.engine.lock
        client = _client(url)
        done: list[str] = []

        def ask(tag: str) -> None:
            client.chat.completions.create(model="unified", messages=_user(f"request {tag}"))
            done.append(tag)

        def waiting() -> float:
            return _sum(_metrics(url), "pz2_requests_waiting")

        lock.acquire()
        try:
            threads = []
            for tag, queued in (("running", 0), ("first", 1), ("second", 2)):
                threads.append(threading.Thread(target=ask, args=(tag,)))
                threads[-1].start()
                deadline = time.monotonic() + 10
                while waiting() != queued or _sum(_metrics(url), "pz2_requests_running") != 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": "unified", "messages": _user("one too many")})
            assert r.status_code == 429 and r.headers["retry-after"] == "3"
            assert r.json()["error"]["type"] == "rate_limit_error"
        finally:
            lock.release()
        for t in threads:
            t.join(60)
        assert done == ["running", "first", "second"]
        capped = client.chat.completions.create(model="unified", messages=_user("tell me more"), max_tokens=400)
        assert capped.usage.completion_tokens == 5 and capped.choices[0].finish_reason == "length", \
            "max_tokens is lowered to runtime.serving.max_tokens"


def test_a_client_that_leaves_mid_stream_frees_its_slot(raw_ws) -> None:
    app = _app(raw_ws, ServingConfig(max_running=1))
    with live_server(app) as url:
        wait_healthy(url)
        assistant = app.state.service.assistant
        body = {"model": "unified", "messages": _user("leave early"), "max_tokens": 400}
        full = _client(url).chat.completions.create(**body)
        assert full.usage.completion_tokens == 400
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=30) as r:
            for _ in zip(range(3), r.iter_lines(), strict=False):
                pass   # the role chunk and the first piece: the answer is under way; then hang up
        deadline = time.monotonic() + 30
        while _sum(_metrics(url), "pz2_requests_running"):
            assert time.monotonic() < deadline, "the slot was not freed"
            time.sleep(0.05)
        last = json.loads(assistant.log.path.read_text().splitlines()[-1])
        assert last["message"] == "leave early"
        assert len(assistant.engine.tokenizer(last["answer"])["input_ids"]) < 300, "generation stopped early"
        after = _client(url).chat.completions.create(model="unified", messages=_user("hi"))
        assert after.choices[0].finish_reason in ("stop", "length")


def test_a_request_that_waits_past_its_timeout_gets_503(serve_ws) -> None:
    app = _app(serve_ws, ServingConfig(request_timeout_s=0.5, max_running=1))   # one answers, the next waits in line
    with live_server(app) as url:
        wait_healthy(url)
        lock = app.state.service.assistant.engine.lock
        blocker = threading.Thread(target=lambda: httpx.post(
            f"{url}/v1/chat/completions", json={"model": "unified", "messages": _user("hold")}, timeout=30))
        lock.acquire()
        try:
            blocker.start()
            time.sleep(0.2)
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": "unified", "messages": _user("late")})
        finally:
            lock.release()
        blocker.join(30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"


def test_the_fair_scheduler_serves_first_come_first_and_skips_who_gave_up() -> None:
    async def scenario() -> list[str]:
        s = FairScheduler(max_running=1, max_waiting=3, retry_after_s=1)
        order: list[str] = []
        await s.acquire()

        async def wait(tag: str) -> None:
            await s.acquire()
            order.append(tag)
            s.release()

        tasks = {tag: asyncio.create_task(wait(tag)) for tag in "abc"}
        await asyncio.sleep(0)
        assert s.waiting == 3
        with pytest.raises(OverloadedError):
            await s.acquire()
        tasks["b"].cancel()
        await asyncio.sleep(0)
        s.release()
        await asyncio.gather(tasks["a"], tasks["c"])
        assert (s.running, s.waiting) == (0, 0)
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


def test_the_routing_record_is_a_documented_part_of_the_api() -> None:
    """`pz2` in a response is a typed model (serving/protocol.py), so the OpenAPI schema lists its fields and
    every reason the router can give; a record with a field the model does not know is refused."""
    import pydantic

    from pz2.config import ServingConfig
    from pz2.runtime.router import REASONS
    from pz2.serving.app import create_app
    from pz2.serving.protocol import RoutingRecord

    schema = create_app(lambda: None, ServingConfig(), "unified").openapi()["components"]["schemas"]
    record = schema["RoutingRecord"]
    assert {"route", "reason", "confidence", "sources", "timed_out"} <= set(record["properties"])
    assert set(schema["Reason"]["enum"] if "Reason" in schema else record["properties"]["reason"]["enum"]) == set(REASONS)
    with pytest.raises(pydantic.ValidationError):
        RoutingRecord(question="q", route="unified", reason="confident", detail="", category="qna", confidence=0.9,
                      complexity=0.1, complexity_parts={}, latency_ms=1.0, specialist_state="not needed", surprise=1)


# The defects a hostile or unlucky client found (issue 27): each fixed at its depth, each kept fixed here.

def test_a_client_that_leaves_a_plain_request_frees_its_slot(serve_ws) -> None:
    """Disconnects are noticed without the streaming path: non-streaming clients that give up leave the line at
    once, the one generating stops, and the slot is free within a second of the client leaving."""
    app = _app(serve_ws, ServingConfig(max_running=1))
    with live_server(app) as url:
        wait_healthy(url)
        assistant = app.state.service.assistant
        lock = assistant.engine.lock

        def leave(tag: str) -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/v1/chat/completions", timeout=1.0,
                           json={"model": "unified", "messages": _user(f"leave a plain request {tag}"), "max_tokens": 400})

        lock.acquire()     # the first is admitted and running, but cannot produce a token yet; three wait
        try:
            clients = [threading.Thread(target=leave, args=(str(i),)) for i in range(4)]
            for client in clients:
                client.start()
                time.sleep(0.05)
            for client in clients:
                client.join(10)
            left = time.monotonic()
            while _sum(_metrics(url), "pz2_requests_waiting"):
                assert time.monotonic() - left < 1.0, "clients that left still wait in line"
                time.sleep(0.02)
            time.sleep(0.3)
        finally:
            lock.release()
        while _sum(_metrics(url), "pz2_requests_running"):
            assert time.monotonic() - left < 1.0, "the slot was not freed within 1 s of the client leaving"
            time.sleep(0.02)
        last = json.loads(assistant.log.path.read_text().splitlines()[-1])
        assert last["message"] == "leave a plain request 0", "only the one running was answered at all"
        assert len(assistant.engine.tokenizer(last["answer"])["input_ids"]) < 300, "generation stopped early"
        requests = _metrics(url)
        assert _sum(requests, "pz2_requests_total", status="499") == 3


def test_invalid_unicode_is_a_400_naming_the_field_and_the_connection_stays_usable(api) -> None:
    """A lone UTF-16 surrogate ("\\ud800") is valid JSON but no text: refused before it reaches the model,
    streamed or not, and the keep-alive connection carries the next request."""
    with httpx.Client(base_url=api.url, timeout=60) as client:
        for extra in ("", '"stream": true, '):
            raw = ('{%s"model": "pz2-hybrid", "messages": [{"role": "system", "content": "be brief"}, '
                   '{"role": "user", "content": "hi \\ud800"}]}' % extra).encode()
            r = client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == "messages.1.content" and "surrogate" in r.json()["error"]["message"]
        r = client.post("/v1/chat/completions", json={"model": "unified", "messages": _user("hi"), "max_tokens": 4})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None


def test_a_system_message_that_fills_the_context_is_a_400_like_a_user_message(api) -> None:
    for stream in (False, True):
        body = {"model": "pz2-hybrid", "stream": stream,
                "messages": [{"role": "system", "content": "rule " * 60_000}, *_user("hi")]}
        r = httpx.post(f"{api.url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 400, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("context_length_exceeded", "messages")


def test_made_up_model_names_do_not_grow_the_metrics(api) -> None:
    """The `model` label takes the served names and `other`: a client cannot mint series (nor write a NUL)."""
    before = len(httpx.get(f"{api.url}/metrics").text)
    for i in range(300):
        r = httpx.post(f"{api.url}/v1/chat/completions", json={"model": f"made-up-{i}\x00", "messages": _user("hi")})
        assert r.status_code == 404
    text = httpx.get(f"{api.url}/metrics").text
    assert len(text) < 2 * before and "\x00" not in text and "made-up" not in text
    models = {dict(ls)["model"] for (name, ls) in _metrics(api.url) if name == "pz2_requests_total"}
    assert models <= {*MODELS, "pz2-hybrid", "other"} and "other" in models


def test_a_request_for_another_host_name_is_refused_on_loopback(api) -> None:
    """DNS rebinding: a page elsewhere whose name now points at 127.0.0.1 sends its own Host; a loopback
    server without a key answers only to loopback names (runtime.serving.allowed_hosts widens it)."""
    port = api.url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}"):
        r = httpx.post(f"{api.url}/v1/chat/completions", headers={"host": host}, json={"model": "unified",
                                                                                         "messages": _user("hi")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "host_not_allowed", r.text
        assert httpx.get(f"{api.url}/v1/models", headers={"host": host}).status_code == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert httpx.get(f"{api.url}/v1/models", headers={"host": host}).status_code == 200, host


def test_a_ten_thousand_message_request_is_refused_at_once_and_the_next_is_served(api) -> None:
    """Bounded work per request: a history of thousands of turns (under the body limit) is refused before
    anything tokenizes it, so it cannot hold the engine's one thread; so is one over the character limit."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(10_001)]
    start = time.monotonic()
    r = httpx.post(f"{api.url}/v1/chat/completions", json={"model": "pz2-hybrid", "messages": turns}, timeout=30)
    assert r.status_code == 400 and time.monotonic() - start < 1.0
    assert (r.json()["error"]["param"], r.json()["error"]["code"]) == ("messages", "too_many_messages")
    assert "runtime.serving.max_messages" in r.json()["error"]["message"]
    start = time.monotonic()
    nxt = httpx.post(f"{api.url}/v1/chat/completions", timeout=30,
                     json={"model": "unified", "messages": _user("and now?"), "max_tokens": 8})
    assert nxt.status_code == 200 and time.monotonic() - start < 5.0
    wide = [{"role": "user", "content": "x" * 150_000}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "y" * 150_000}, {"role": "assistant", "content": "ok"}, *_user("z" * 150_000)]
    r = httpx.post(f"{api.url}/v1/chat/completions", json={"model": "pz2-hybrid", "messages": wide}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "messages_too_long"


def test_an_escalation_budget_per_request_sets_the_threshold_from_the_fits_curve(confident_ws, tmp_path) -> None:
    """`escalation_budget` (a documented extension field) replaces the configured threshold with the one that
    escalated that share of the confidence fit's validation answers; out of 0..1 it is a 400."""
    from pz2.runtime.confidence import CONFIDENCE_FILE, ConfidenceModel
    from tests.conftest import copy_workspace

    ws = copy_workspace(confident_ws, tmp_path)
    model = ConfidenceModel.load(ws.unified_model / CONFIDENCE_FILE)
    questions = ["What is gravity?", "How do I undo a commit in git?", "What causes the seasons?",
                 "How do I freeze the top row in Excel?", "Why is the sky blue?"]
    with live_server(_app(ws)) as url:
        wait_healthy(url)
        client = _client(url)
        judged = []   # turns the router judged after the unified answer: the ones a threshold applies to
        for q in questions:
            for budget in (0.25, None):
                extra = {} if budget is None else {"escalation_budget": budget}
                record = client.chat.completions.create(model="pz2-hybrid", messages=_user(q), extra_body=extra).model_extra["pz2"]
                if record["threshold"] is not None:
                    judged.append((budget, record))
        assert judged, "no question reached the router's judgement of a unified answer"
        for budget, record in judged:
            want = 0.7 if budget is None else model.threshold(budget)
            assert record["threshold"] == pytest.approx(want)
            assert record["reason"] in ("confident", "low_confidence", "no_grounds", "offer")
        bad = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                         json={"model": "pz2-hybrid", "messages": _user("hi"), "escalation_budget": 1.5})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "escalation_budget"
