"""Recording modes: no_grad / enable_grad (context managers and decorators), scopes on the
recorded Functions, and anomaly detection naming the Function and the user's source line."""

import gc
import re
import threading
import weakref

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F


def leaf(values):
    return tg.Variable(np.asarray(values, dtype=np.float64))


# ------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = F.tanh(x * 2.0).sum()
    assert tg.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        y.backward()


def test_no_grad_keeps_no_input_alive():
    x = leaf(np.ones(3))
    with tg.no_grad():
        y = F.exp(x * 2.0)
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(y.data, np.exp(2.0))
    # The same computation recorded keeps its input alive for the backward pass.
    x = leaf(np.ones(3))
    y = F.exp(x * 2.0)
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is not None


def test_enable_grad_inside_no_grad():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        with tg.enable_grad():
            y = (x * x).sum()
        z = x * x
    assert y.creator is not None and z.creator is None
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_no_grad_and_enable_grad_as_decorators():
    @tg.no_grad()
    def evaluate(x):
        return x * 2.0

    @tg.enable_grad()
    def train_step(x):
        return x * 2.0

    x = leaf([1.0])
    assert evaluate(x).creator is None
    with tg.no_grad():
        assert train_step(x).creator is not None
        assert evaluate(x).creator is None
        assert train_step(x).creator is not None  # decorators can be re-entered
    assert evaluate(x).creator is None and tg.is_grad_enabled()


def test_no_grad_without_parentheses_and_on_a_generator():
    @tg.no_grad
    def evaluate(x):
        return x * 2.0

    @tg.no_grad()
    def doubles(x):
        received = yield x * 2.0
        yield x * received

    x = leaf([1.0])
    assert evaluate(x).creator is None
    steps = doubles(x)
    first = next(steps)
    assert tg.is_grad_enabled()  # between the steps, the caller's mode
    second = steps.send(3.0)
    assert first.creator is None and second.creator is None and second.data.tolist() == [3.0]
    assert (x * 2.0).creator is not None


def test_a_decorated_function_called_from_two_threads_restores_each_threads_mode():
    """Each call enters a switch of its own: overlapping calls in two threads do not restore
    the other thread's mode on the way out (one shared switch once did)."""
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

    @tg.no_grad()
    def overlap(first):
        (a_inside if first else b_inside).set()
        (b_inside if first else a_left).wait()

    after = {}

    def thread_a():
        with tg.no_grad():
            overlap(True)
            after["a"] = tg.is_grad_enabled()
        a_left.set()

    def thread_b():
        a_inside.wait()
        overlap(False)
        after["b"] = tg.is_grad_enabled()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert after == {"a": False, "b": True}


def test_grad_mode_is_restored_after_an_error():
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            raise ZeroDivisionError
    assert tg.is_grad_enabled()


# ------------------------------------------------------------------------- scopes
def test_scope_paths_on_recorded_functions():
    x = leaf([1.0])
    outside = x * 1.0
    with tg.scope("lstm.l0"):
        layer = x * 2.0
        with tg.scope("t=3"):
            step = x * 3.0
        after = x * 4.0
    assert outside.creator.scope is None
    assert layer.creator.scope == "lstm.l0"
    assert step.creator.scope == "lstm.l0/t=3"
    assert after.creator.scope == "lstm.l0"
    assert (x * 5.0).creator.scope is None


def test_scope_as_decorator_and_recording_order():
    @tg.scope("cell")
    def cell(x):
        return F.tanh(x * 2.0)

    x = leaf([1.0])
    y = cell(x)
    assert y.creator.scope == "cell" and y.creator.inputs[0].creator.scope == "cell"
    assert y.creator.seq > y.creator.inputs[0].creator.seq


@pytest.mark.parametrize("name", ["", "a/b"])
def test_scope_rejects_bad_names(name):
    with pytest.raises(ValueError, match="scope: name must be non-empty and contain no '/'"):
        tg.scope(name)


# ------------------------------------------------------------------------- anomaly detection
def recorded_here(source):
    """The end of an anomaly error: this test file, a line number and that line's source."""
    return re.escape(f"; the Function was recorded at {__file__}:") + r"\d+: " + re.escape(source) + "$"


def test_detect_anomaly_names_the_function_and_line_of_a_forward_nan():
    x = leaf([1.0, -1.0])
    with tg.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(tg.AnomalyError, match=r"^log: output 0 of shape \(2,\) contains NaN or Inf "
                                                   r"at index \(1,\)" + recorded_here("F.log(x)")) as error:
            F.log(x)
    assert f":{error.value.__traceback__.tb_lineno}: " in str(error.value)  # the very line


def test_detect_anomaly_names_the_function_and_line_of_a_backward_nan():
    x = leaf(0.0)
    with tg.detect_anomaly(), np.errstate(divide="ignore"):
        # sqrt is finite at 0, its derivative is not
        y = F.sqrt(x) * 2.0
        with pytest.raises(tg.AnomalyError, match=r"^sqrt: input gradient 0 of shape \(\) contains NaN "
                                                   r"or Inf at index \(\)"
                                                   + recorded_here("y = F.sqrt(x) * 2.0")):
            y.backward()
    assert x.grad is None


def test_without_detect_anomaly_nan_passes_silently():
    x = leaf(0.0)
    with np.errstate(divide="ignore"):
        F.sqrt(x).backward()
    assert np.isinf(x.grad.data)


def test_step_axis_names_the_step_of_the_first_bad_index_of_an_output_recorded_inside():
    x = leaf(np.ones((2, 4)))
    x.data[1, 2] = x.data[0, 3] = -1.0  # NaN at steps 2 and 3: the first bad index is (0, 3)
    with tg.detect_anomaly(), np.errstate(invalid="ignore"), tg.scope("layer"):
        with tg.step_axis(1), pytest.raises(tg.AnomalyError, match=r"^log: output 0 of shape \(2, 4\) "
                                            r"contains NaN or Inf at index \(0, 3\); the Function was "
                                            r"recorded in scope layer/t=3 at .*: F.log\(x\)$"):
            F.log(x)
        with tg.step_axis(1), pytest.raises(tg.AnomalyError, match=r"recorded in scope layer at "):
            F.log(x[0])  # an output without the axis
        with pytest.raises(tg.AnomalyError, match=r"recorded in scope layer at "):
            F.log(x)  # after the block, in the layer's scope again


def test_step_axis_leaves_the_scope_of_functions_and_of_input_gradients():
    x = leaf(np.zeros((2, 3)))
    with tg.detect_anomaly(), np.errstate(divide="ignore"), tg.scope("layer"):
        with tg.step_axis(1):
            y = F.sqrt(x)  # finite at 0, its derivative is not
        assert y.creator.scope == "layer"  # as drawings show it
        # an input gradient has the shape of an input, whose axes the declaration does not describe
        with pytest.raises(tg.AnomalyError, match=r"^sqrt: input gradient 0 .* recorded in scope layer at "):
            y.sum().backward()


@pytest.mark.parametrize("axis", [-1, 1.0, "0"])
def test_step_axis_rejects_bad_axes(axis):
    with pytest.raises(ValueError, match="step_axis: axis must be an int >= 0"):
        tg.step_axis(axis)


def test_grad_mode_and_scope_belong_to_the_thread_that_sets_them():
    main_inside, other_inside, release = threading.Event(), threading.Event(), threading.Event()
    x = tg.Variable(np.ones(2))
    seen = {}

    def other():
        main_inside.wait()  # the main thread is inside no_grad and a scope now
        y = x * 2
        seen.update(enabled=tg.is_grad_enabled(), scope=y.creator and y.creator.scope)
        with tg.no_grad():
            other_inside.set()
            release.wait()

    thread = threading.Thread(target=other)
    thread.start()
    with tg.no_grad(), tg.scope("main"):
        main_inside.set()
        other_inside.wait()
        assert (x * 2).creator is None
    z = x * 2  # while the other thread is inside its own no_grad
    release.set()
    thread.join()
    assert seen == {"enabled": True, "scope": None}  # recorded, outside the main thread's scope
    assert tg.is_grad_enabled() and z.creator is not None
