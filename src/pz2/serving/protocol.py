"""The OpenAI chat-completions wire format, and pz2's extensions to it: pydantic models only.

Fields follow the order of the OpenAI reference; pz2's come after them, marked. Unknown request
fields are accepted (clients send what their version knows) and logged, never silently used.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from pz2.runtime.engine import Sampling
from pz2.runtime.router import Reason
from pz2.runtime.turn import Options

logger = logging.getLogger(__name__)

# The served names: the router, and each model it can route to (OpenAI `model` ids).
HYBRID = "pz2-hybrid"
MODELS: dict[str, str | None] = {HYBRID: None, "unified": "unified", "qna-specialist": "qna",
                                 "technical-specialist": "technical"}


def valid_text(text: str) -> str:
    """`text`, refused when it holds a lone UTF-16 surrogate: JSON allows the escape ("\\ud800"), but it is
    no character, and no tokenizer (nor UTF-8) takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"not valid Unicode: a lone UTF-16 surrogate ({text[e.start]!r} at character {e.start}); "
                         "send text") from None
    return text


Text = Annotated[str, AfterValidator(valid_text)]


class OpenAIModel(BaseModel):
    """Accepts fields a newer OpenAI client sends (`refusal`, `tool_calls`: None on plain text turns)."""

    model_config = ConfigDict(extra="allow")


class ChatMessage(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: Text | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, v: str | list[dict[str, Any]]) -> str:
        """Content parts are joined when all are text; images and audio are not for these models."""
        if isinstance(v, str):
            return valid_text(v)
        if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in v):
            raise ValueError("only text content parts are supported")
        return valid_text("".join(part["text"] for part in v))


class StreamOptions(OpenAIModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions."""

    model_config = ConfigDict(extra="allow")

    # OpenAI fields, in the order of the OpenAI reference
    messages: list[ChatMessage] = Field(min_length=1)
    model: Text
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: Text | list[Text] | None = Field(None, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    user: Text | None = None

    # pz2 extensions, not in the OpenAI spec
    expert: bool = Field(False, description="Answer with the specialist of the question's category (expert mode).")
    retrieval: bool = Field(True, description="False: a specialist answers from the messages alone, no knowledge "
                            "base; what a pz2 router sends when this server is its backend.")
    escalation_budget: float | None = Field(
        None, ge=0, le=1, description="Share of qna/technical turns to escalate to a specialist: the confidence "
        "threshold that escalated this share of the confidence fit's validation answers (RouteLLM's calibration); "
        "null: the server's `runtime.router` policy.")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("at most 4 non-empty stop strings")
        return stops

    @model_validator(mode="after")
    def _conversation(self) -> ChatCompletionRequest:
        if self.messages[-1].role != "user":
            raise ValueError("the last message must be the user's: it is the one answered")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("`top_logprobs` needs `logprobs: true`")
        if self.stream_options is not None and not self.stream:
            raise ValueError("`stream_options` needs `stream: true`")
        return self

    def ignored(self) -> list[str]:
        """Fields sent that pz2 does not use: logged per request, as vLLM does."""
        unused = {"frequency_penalty", "presence_penalty"} & self.model_fields_set
        return sorted(unused | set(self.model_extra or {}))

    def to_options(self, max_tokens_cap: int, cancelled: Any) -> Options:
        """The assistant's options for this request: earlier turns, system prompt, sampling, the named model.
        Without `max_tokens` the answer is as long as `runtime.engine.max_new_tokens` allows."""
        system = [m.content for m in self.messages if m.role in ("system", "developer")]
        turns = tuple({"role": m.role, "content": m.content} for m in self.messages[:-1]
                      if m.role in ("user", "assistant"))
        wanted = self.max_completion_tokens or self.max_tokens
        sampling = Sampling(temperature=0.0 if self.temperature is None else self.temperature,
                            top_p=1.0 if self.top_p is None else self.top_p, seed=self.seed, stop=tuple(self.stop),
                            top_logprobs=(self.top_logprobs or 0) if self.logprobs else None, cancelled=cancelled)
        return Options(history=turns, system="\n\n".join(system) if system else None, sampling=sampling,
                       max_new_tokens=min(wanted, max_tokens_cap) if wanted else None, model=MODELS[self.model],
                       retrieval=self.retrieval, provisional=False, escalation_budget=self.escalation_budget)


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


COMPLETION_PREFIX = "chatcmpl-"


def completion_id(turn_id: str) -> str:
    """The response id of a turn: OpenAI's prefix, then the turn id its rating names."""
    return f"{COMPLETION_PREFIX}{turn_id}"


def _now() -> int:
    return int(time.time())


class RoutingRecord(BaseModel):
    """pz2's extension of a response (`pz2`): where the turn went and why, as the decision log records it
    (runtime/assistant.py `Turn.record`), less what the response already carries (message, answer, session)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The turn's id, which `POST /v1/feedback` names (the response id is chatcmpl-<id>).")
    question: str = Field(description="What was answered: the message, or the question a bare expert request refers to.")
    route: Literal["unified", "specialist", "offer"]
    reason: Reason
    detail: str = Field(description="The reason in words, with the numbers that decided it.")
    category: str = Field(description="The specialist's category, or the classifier's label.")
    confidence: float | None = Field(description="P(the unified answer is good); null when none was judged.")
    complexity: float
    complexity_parts: dict[str, Any]
    latency_ms: float
    specialist_state: str
    unified_answer: str | None = None
    specialist: str | None = None
    first_token_ms: float | None = None
    classifier: dict[str, Any] = Field(default_factory=dict, description="label, probability, note")
    sources: list[dict[str, Any]] = Field(default_factory=list, description="Passages in the prompt, with `cited`.")
    retrieval_ms: float | None = None
    check: dict[str, Any] | None = Field(None, description="The unified answer checked against the knowledge base: the "
                                         "closest passage's similarity, the answer's agreement and support, grounds.")
    threshold: float | None = Field(None, description="The confidence threshold in force for this turn.")
    offer: str | None = None
    dropped_messages: int = Field(0, description="Earlier turns left out so the prompt fits the context.")
    finish_reason: Literal["stop", "length", "cancelled"] = Field(
        "stop", description="`length`: the answer reached its token budget and was cut back to its last complete "
        "sentence or list item (runtime.engine.end_on_sentence).")
    timed_out: bool = Field(False, description="Cut at runtime.serving.request_timeout_s.")
    follows: str | None = Field(None, description="The turn whose question this one answers again (an accepted "
                                "expert-mode offer, an expert request right after an answer).")


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[Choice]
    usage: Usage
    pz2: RoutingRecord   # pz2 extension: the routing record


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    pz2: RoutingRecord | None = None   # pz2 extension, on the chunk that finishes the choice


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "pz2"
    root: str
    parent: str | None = None   # an adapter's base, as vLLM lists LoRA modules


class FeedbackRequest(BaseModel):
    """pz2's `POST /v1/feedback`: a person's rating of an answer, which `pz2 train confidence --feedback`
    refits the router on and `pz2 data feedback` turns into preference pairs."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(description="The response id (`chatcmpl-…`) or the routing record's `id`.", max_length=200)
    rating: Literal["good", "bad"]
    comment: Text | None = Field(None, max_length=2000, description="What was wrong or right, in the person's words.")

    @property
    def turn(self) -> str:
        return self.id.removeprefix(COMPLETION_PREFIX)


class Feedback(BaseModel):
    object: Literal["feedback"] = "feedback"
    id: str
    rating: Literal["good", "bad"]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
