"""ROUGE-L and chrF against hand-computed values."""

import pytest

from pz2.evaluation.text_metrics import chrf, rouge_l


def test_rouge_l() -> None:
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    # LCS("the cat was on mat", "the cat sat on the mat") = the cat on mat = 4 words
    assert rouge_l("the cat was on mat", "the cat sat on the mat") == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert rouge_l("completely different", "the cat") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "x") == 0.0


def test_chrf() -> None:
    assert chrf("hello world", "hello world") == pytest.approx(1.0)
    assert chrf("abc", "xyz") == 0.0
    assert 0 < chrf("Open the Layer Properties Manager", "Open the layer manager") < 1
    # recall counts more than precision: a prediction that covers the reference scores higher
    ref = "press ctrl z to undo"
    assert chrf("press ctrl z to undo the last step", ref) > chrf("press ctrl", ref)
