"""Faults, the class "a library's message in our one line": cut at a sentence, never mid-word (issue 35)."""

import time

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


def test_a_full_disk_under_jsonl_is_said_once_also_at_the_last_flush(tmp_path):
    """Hostile sweep: `run --jsonl /dev/full` said the first failed write, then died at exit with a traceback from
    the file's close (its last flush). Both are warnings now, the close's only when nothing was said before."""
    import errno

    from edgeseg.camera.jsonl import JsonlSink
    from edgeseg.camera.sink import SinkOptions

    said: list[str] = []
    sink = JsonlSink(str(tmp_path / "r.jsonl"), SinkOptions(log=said.append))

    class Full:
        def write(self, text):
            return len(text)  # buffered: fine until the flush

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.flush()

    sink.f.close()
    sink.f = Full()
    sink.send("frame", {"frame": 0})
    sink.send("frame", {"frame": 1})
    sink.close()  # no exception
    assert len(said) == 1 and said[0].startswith("warning: --jsonl") and "No space left" in said[0], said
    assert sink.dropped == 2 and sink.sent == 0
    quiet = JsonlSink(str(tmp_path / "q.jsonl"), SinkOptions(log=said.append))
    quiet.f.close()
    quiet.f = Full()
    quiet.close()  # nothing was sent: the close's own failure is said
    assert len(said) == 2 and "its last lines are lost" in said[1]


def test_a_thread_count_given_twice_is_one_setting():
    from edgeseg.cli.device import _thread_list

    assert _thread_list("1,1,2,1") == [1, 2] and _thread_list(None) == [None]


def test_an_error_a_sigterm_turned_into_is_said_as_the_stop(capsys):
    """A full run saw convert exit 1 with "keras failed while running it (SystemError: ...)": the SIGTERM's
    exception had landed in native code and came out as another error. After a stop signal, a runtime's error and
    a bug's are the stop (exit 143, "terminated" once); our own errors are still said (a stats file that could not
    be written must be told); the command's own exit passes as it is; with no signal, nothing changes."""
    import os
    import signal

    import typer

    from edgeseg import signals
    from edgeseg.cli.common import handles_errors, stopped
    from edgeseg.errors import ModelError
    from edgeseg.predictors.base import _runtime_errors

    class Runtime:
        runtime_name, path = "keras", None

        @_runtime_errors
        def invoke(self):
            raise SystemError("bad argument to internal function")

    def command(error, send: bool):
        @handles_errors
        def convert():
            try:
                if send:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises in here
            except KeyboardInterrupt:
                pass  # native code that turned it into something else
            if error == "runtime":
                Runtime().invoke()
            if error == "stop":  # run says its stop itself after its summary, and exits with it
                raise stopped()
            raise error

        return convert

    def exit_code(error, send):
        capsys.readouterr()
        with pytest.raises(typer.Exit) as e:
            command(error, send)()
        return e.value.exit_code, capsys.readouterr().err

    for error in ("runtime", SystemError("x")):
        code, err = exit_code(error, True)
        assert code == 143 and err.count("terminated (SIGTERM)") == 1, err
    code, err = exit_code(ModelError("x.json: cannot write"), True)
    assert code == 1 and "cannot write" in err
    code, err = exit_code("stop", True)  # the command's own stop: said once, not twice
    assert code == 143 and err.count("terminated (SIGTERM)") == 1, err
    assert exit_code("runtime", False)[0] == 1  # no signal: the runtime's failure, one line
    error = SystemError("x")
    error.__cause__ = ValueError("its cause")
    with pytest.raises(SystemError) as bug:  # a bug with no signal behind it keeps its traceback and its cause
        command(error, False)()
    assert isinstance(bug.value.__cause__, ValueError)
    with signals.graceful_sigterm():  # a fresh command starts with nothing received
        assert not signals.stop_received()


def test_a_sigterm_a_library_swallowed_still_stops_the_command():
    """A full run once saw `convert` finish with exit 0 after a SIGTERM: the signal's exception had landed inside
    library code that catches everything. The command now stops anyway (exit 143, and convert writes nothing)."""
    import signal

    from edgeseg import signals

    with signals.graceful_sigterm():
        try:
            signals._raise(signal.SIGTERM)  # what the handler does when SIGTERM comes
        except BaseException:  # noqa: BLE001 - a library that swallows it
            pass
        with pytest.raises(signals.Terminated):
            signals.raise_if_stopped()
    with signals.graceful_sigterm():  # a fresh command starts with nothing received
        signals.raise_if_stopped()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["train", "--lr", "nan"], "'--lr': nan is not a finite number"),
        (["train", "--kd-weight", "inf"], "'--kd-weight': inf is not a finite number"),
        (["train", "--lr", "20"], "'--lr': 20 is not in the range 1e-08..10"),
        (["train", "--ema", "abc"], "'--ema': 'abc' is not a number"),
        (["run", "--alpha", "-inf"], "'--alpha': -inf is not a finite number"),
        (["run", "--duration", "nan"], "'--duration': nan is not a finite number"),
    ],
)
def test_a_float_option_that_is_not_a_finite_number_in_range_says_so(args, said):
    """Typer's range check let nan through to "Input should be less than or equal to MAX": the wrong reason.
    Every float option now says what is wrong with the number (exit 2, before any work)."""
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and said in r.output, r.output
    assert "Traceback" not in r.output and "less than or equal" not in r.output
