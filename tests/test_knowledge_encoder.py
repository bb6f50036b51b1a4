"""The knowledge base's own encoder (issue 24, item 3): any local sentence-transformers folder, pooled as it
says, recorded in the index and checked when the index is read; and a grounded answer asked in the
question's language when the base writes it. The encoder is a tiny random BERT built here, reading text
with the byte-level tokenizer of the embedded base: it reads Hangul as its own tokens, where the embedded
English MiniLM sees unknown pieces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from pz2.config import KnowledgeConfig, ModelConfig, TrainingConfig
from pz2.errors import ModelError
from pz2.knowledge.build import build_knowledge
from pz2.knowledge.grounding import Passage, grounded_message
from pz2.knowledge.retrieval import Retriever
from pz2.models.prepare import embedded_tokenizer_dir
from pz2.models.sentence import SentenceEncoder, knowledge_encoder_name
from pz2.runtime.language import reply_language

SCENARIO_2 = "SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘"


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: weights, tokenizer, CLS pooling, a 64-token limit."""
    folder = tmp_path_factory.mktemp("tiny-multilingual")
    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(ModelConfig(cache_dir=tmp_path_factory.mktemp("c"))))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    return folder


def _cfg(tmp_path: Path, encoder: Path | None) -> ModelConfig:
    return ModelConfig.model_validate({"cache_dir": str(tmp_path / "cache"),
                                       "knowledge": {"encoder_model": None if encoder is None else str(encoder)}})


def test_an_encoder_of_your_own_pools_and_truncates_as_its_folder_says(multilingual: Path, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, multilingual)
    encoder = SentenceEncoder.for_knowledge(cfg)
    assert (encoder.name, encoder.pooling, encoder.max_length, encoder.dim) == (str(multilingual), "cls", 64, 32)
    batch = encoder.tokenizer(["곡면 모델링", "curved surfaces"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        cls = encoder.model(**batch).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=-1).numpy()
    np.testing.assert_allclose(encoder.embed(["곡면 모델링", "curved surfaces"]), expected, atol=1e-5)
    assert len(encoder.tokenizer(SCENARIO_2 * 20, truncation=True, max_length=encoder.max_length)["input_ids"]) == 64
    korean = encoder.embed(["스케치업 곡면", "블렌더 재질"])
    assert float(korean[0] @ korean[1]) < 0.999, "it reads the Korean words, not unknown pieces"
    classifier = SentenceEncoder.load(cfg)   # the classifier's and SemScore's stays the embedded MiniLM
    assert (classifier.name, classifier.pooling, classifier.dim) == ("embedded", "mean", 384)
    assert SentenceEncoder.for_knowledge(_cfg(tmp_path, None), classifier) is classifier


def test_texts_embedded_together_come_back_in_their_order_as_if_embedded_alone(multilingual: Path,
                                                                              tmp_path: Path) -> None:
    """`embed` batches the longest texts together (less padding) and returns the vectors in the caller's order."""
    encoder = SentenceEncoder.for_knowledge(_cfg(tmp_path, multilingual))
    texts = ["a", "curved surfaces in SketchUp " * 3, "곡면 모델링", "freeze the top row", "x " * 40]
    together = encoder.embed(texts, batch_size=2)
    alone = np.concatenate([encoder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.shape == (5, 32) and encoder.embed([]).shape == (0, 32)


def test_the_index_records_its_encoder_and_refuses_another(multilingual: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sketchup.md").write_text("# SketchUp curved surfaces\n\nUse the Sandbox tools to model curved "
                                      "surfaces from contours.\n", encoding="utf-8")
    (docs / "blender.md").write_text("# Blender materials\n\nOpen the Shading tab to edit a material.\n",
                                     encoding="utf-8")
    cfg = _cfg(tmp_path, multilingual)
    folder = tmp_path / "kb"
    build_knowledge(folder, KnowledgeConfig(collections=[]), TrainingConfig(), SentenceEncoder.for_knowledge(cfg),
                    [docs])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["encoder"], manifest["encoder_dim"]) == (knowledge_encoder_name(cfg), 32)

    retriever = Retriever.load(folder, cfg)
    found = retriever.search(SCENARIO_2)
    assert retriever.encoder.name == str(multilingual) and found.hits   # its 32-dimension vectors, searched
    with pytest.raises(ModelError, match=r"built with the encoder .*tiny-multilingual.*pz2 kb build"):
        Retriever.load(folder, _cfg(tmp_path, None))


def test_a_grounded_specialist_is_asked_to_answer_in_the_question_language() -> None:
    passage = [Passage(1, "sketchup.md", "SketchUp curved surfaces", "Use the Sandbox tools.")]
    assert reply_language(SCENARIO_2) == "Korean"
    assert reply_language("How do I model 곡면 in SketchUp with the Sandbox tools?") is None   # mostly English
    assert reply_language("How do I model curved surfaces?") is None
    assert grounded_message(SCENARIO_2, passage, reply_language(SCENARIO_2)).endswith("Answer in Korean.")
    assert "Answer in" not in grounded_message("How do I model curved surfaces?", passage)
