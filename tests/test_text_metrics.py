"""Answer metrics: hand-computed values, the packages' own numbers, SemScore, factual accuracy."""

import math

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from pz2.evaluation.text_metrics import bleu, chrf, contains_answer, normalize_answer, repeats_ngram, rouge_l

PAIRS = [("the cat was on mat", "the cat sat on the mat"), ("Open the Layer Properties Manager", "Open the layer manager"),
         ("press ctrl z to undo the last step", "press ctrl z to undo"), ("completely different", "the cat")]


def test_rouge_l_by_hand() -> None:
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    # LCS("the cat was on mat", "the cat sat on the mat") = the cat on mat = 4 words
    assert rouge_l("the cat was on mat", "the cat sat on the mat") == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert rouge_l("completely different", "the cat") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "x") == 0.0


def test_chrf_by_hand() -> None:
    assert chrf("hello world", "hello world") == pytest.approx(1.0)
    assert chrf("abc", "xyz") == 0.0
    assert 0 < chrf("Open the Layer Properties Manager", "Open the layer manager") < 1
    # recall counts more than precision: a prediction that covers the reference scores higher
    ref = "press ctrl z to undo"
    assert chrf("press ctrl z to undo the last step", ref) > chrf("press ctrl", ref)


def test_bleu_by_hand() -> None:
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # every n-gram of the prediction matches; only the brevity penalty exp(1 - 6/5) applies
    assert bleu("a b c d e", "a b c d e f") == pytest.approx(math.exp(1 - 6 / 5), abs=1e-4)
    assert bleu("completely different", "the cat") == 0.0


@pytest.mark.parametrize("prediction, reference", PAIRS)
def test_the_numbers_are_the_packages_numbers(prediction: str, reference: str) -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    assert rouge_l(prediction, reference) == pytest.approx(scorer.score(reference, prediction)["rougeL"].fmeasure)
    assert chrf(prediction, reference) == pytest.approx(CHRF().sentence_score(prediction, [reference]).score / 100)
    assert bleu(prediction, reference) == pytest.approx(
        min(1.0, BLEU(effective_order=True).sentence_score(prediction, [reference]).score / 100))


def test_factual_accuracy_is_the_normalised_reference_inside_the_answer() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffel tower"
    assert contains_answer("It was Richard Nixon, in 1969.", "Richard Nixon")
    assert contains_answer("the answer is Hamlet", "Hamlet.")
    assert not contains_answer("Hamletville is a town", "Hamlet")       # whole words only
    assert not contains_answer("Gerald Ford", "Richard Nixon")
    assert not contains_answer("anything", "")                           # an empty reference proves nothing


def test_repeated_four_grams_are_loops() -> None:
    assert repeats_ngram("click the tool button again. click the tool button again.")
    assert not repeats_ngram("open the file menu, then choose save as and pick a folder")


def test_semscore_of_identical_and_unrelated_strings() -> None:
    from pz2.config import ModelConfig
    from pz2.evaluation.answer_quality import semscores
    from pz2.models.sentence import SentenceEncoder

    encoder = SentenceEncoder.load(ModelConfig())
    same, paraphrase, unrelated = semscores(
        encoder, ["Paris is the capital of France.", "France's capital city is Paris.", "I like green tea with honey."],
        [["Paris is the capital of France."]] * 3)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > 0.8 and unrelated < 0.3
    # several references: the best one counts
    assert semscores(encoder, ["I like green tea with honey."],
                     [["Paris is the capital of France.", "I like green tea with honey."]])[0] == pytest.approx(1.0, abs=1e-5)


def test_a_faithful_copy_writes_the_passages_commands_and_key_phrases_verbatim() -> None:
    from pz2.evaluation.text_metrics import faithful_copy, key_phrases

    passage = "To undo the last commit, run `git reset --soft HEAD~1`. In Excel use FreezePanes or press Ctrl+Shift+L, e.g. now."
    assert key_phrases(passage) == {"git reset --soft HEAD~1", "FreezePanes", "Ctrl+Shift+L"}   # not "e.g"
    assert faithful_copy("Run git reset --soft HEAD~1, then Ctrl+Shift+L and FreezePanes.", passage) == 1.0
    assert faithful_copy("Run gitReset --soft --hard HEAD^1 and Ctrl+Shift+L.", passage) == pytest.approx(1 / 3)
    assert faithful_copy("anything", "a passage without commands.") is None


def test_odd_words_show_glued_and_split_words_not_known_ones() -> None:
    from pz2.evaluation.text_metrics import odd_words

    vocabulary = {"Web", "APIs", "usually", "exchange", "data", "Freeze", "the", "Use", "in"}
    assert odd_words("Web APIs usuallyexchange data", "web apis exchange data", vocabulary) == ["usuallyexchange"]
    assert odd_words("Use FreezePanes in the sheet", "Freeze Panes: FreezePanes freezes the sheet", vocabulary) == []
