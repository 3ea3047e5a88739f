"""Faults, the class "a library's message in our one line": cut at a sentence, never mid-word (issue 35)."""

import pytest

from edgeseg.errors import ModelError, first_sentence


def test_first_sentence_cuts_at_a_sentence_or_a_word():
    assert first_sentence("Bad header. Something else follows.") == "Bad header."
    assert first_sentence("a\nmulti-line\n  message") == "a multi-line message"
    long = "word " * 100
    cut = first_sentence(long, limit=50)
    assert cut.endswith("...") and len(cut) <= 53 and not cut[:-3].endswith(" wor")
    assert first_sentence("x; y") == "x"


def test_a_keras_file_that_would_run_code_is_refused_in_whole_sentences(tmp_path):
    """Keras' safe-mode refusal was cut at 160 characters, mid-sentence; now its first sentence and ours."""
    keras = pytest.importorskip("keras")

    from edgeseg.predictors.keras import load_keras

    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelError) as e:
        load_keras(tmp_path / "lambda.keras")
    said = str(e.value)
    assert "\n" not in said and said.endswith("never runs code from them)"), said
    assert "Lambda" in said and "safe mode" in said
