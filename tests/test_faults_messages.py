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


def test_an_error_after_a_cut_off_progress_bar_starts_its_own_line(monkeypatch, capsys):
    """A training error mid-epoch was written at the end of Keras' progress bar; on a terminal the error line now
    clears the line the cursor is on first. Not on a pipe or in a log file, where no bar is drawn."""
    import sys

    from edgeseg.cli.common import CLEAR_LINE, fail

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    print("Epoch 3/30  17/59 [=====>......]", end="", file=sys.stderr)
    assert fail("the disk is full").exit_code == 1
    err = capsys.readouterr().err
    assert err.endswith(CLEAR_LINE + "error: the disk is full\n") or (CLEAR_LINE + "\x1b[31merror") in err, repr(err)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    fail("again")
    assert CLEAR_LINE not in capsys.readouterr().err
