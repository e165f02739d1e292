"""A ``tg.jit`` plan compiled to Python: one line of source per step.

Replaying a plan step by step pays, for every step, the loop, a list of its input arrays,
a call that stores what the step returned and a loop over the slots it frees: on the tiny
arrays of a long chain of small operations that is as much as the operation itself. The
plan is the same at every replay, so it is written once as the body of one Python
function, each step a line over the environment ``env`` of arrays::

    env[5] = f3(env[2], env[1])       # a step: its Function's forward
    env[2] = None                     # a slot after its last use
    env[7], env[8] = f4(env[5])       # a step with two outputs
    frames[6] = frame                 # (after lines making it) a Function whose numpy_backward runs later

and compiled. What each step returns (an array, a tuple of arrays, a NumPy scalar) is
taken from a first replay, which runs the steps one by one (:func:`interpret`).
``source`` keeps the text, to read the plan as the program it is. An error a step raises on
a replay's values (an index out of range) names the step's operation, as in eager mode.
"""

import numpy as np

from tensorgrad.function import InputError, ShapeError

ARRAY, TUPLE, SCALAR, NOTHING = "array", "tuple", "scalar", "nothing"  # what a step's call returns


def kind_of(result):
    """What a Function's forward returned, as the compiled line must store it."""
    if type(result) is np.ndarray:
        return ARRAY
    if type(result) is tuple:
        return TUPLE
    return SCALAR


def store(env, slots, result):
    """Put a forward's result (an array, a tuple of arrays, a NumPy scalar) into ``slots``; its kind."""
    kind = kind_of(result)
    if kind == ARRAY:
        env[slots[0]] = result
    elif kind == TUPLE:
        for s, y in zip(slots, result):
            env[s] = y
    else:
        env[slots[0]] = np.asarray(result)  # as Variable._result does
    return kind


class Line:
    """One step as compiled: ``call`` (a callable), the slots it reads, the slots it writes
    (``kind`` says how) and the slots to free after it. ``call`` None: ``extra`` is a line of
    source that uses the names in ``names`` (steps that are not a plain forward). ``op``: the
    operation that errors raised by the step name."""

    __slots__ = ("call", "inputs", "outputs", "kind", "frees", "extra", "names", "op")

    def __init__(self, call, inputs, outputs, kind, frees, extra=None, names=None, op=None):
        self.call, self.inputs, self.outputs, self.kind, self.frees = call, inputs, outputs, kind, frees
        self.extra, self.names, self.op = extra, names or {}, op


def raise_named(error, op):
    """Raise ``error`` (raised by a step of a replay) naming the step's operation ``op``, as a
    Function's call names it in eager mode; as it is if it needs no name."""
    named_already = isinstance(error, ShapeError | InputError)  # their messages name the operation
    if op is None or named_already or not isinstance(error, ValueError | IndexError):
        raise error
    raise type(error)(f"{op}: {error}") from error


CHUNK = 64  # steps compiled into one function: the parser's peak memory stays small (a replay's own is less)


def compile_lines(lines, name, shared=None):
    """A function ``run(env, frames)`` executing ``lines`` in order (``shared``: names every line
    may use), compiled in chunks of ``CHUNK`` steps; its source as ``run.source``."""
    namespace = {"asarray": np.asarray, **(shared or {})}
    body = []  # (source line, the index of its step)
    for n, line in enumerate(lines):
        if n % CHUNK == 0:
            body.append((f"def part{n // CHUNK}(env, frames):", n))
        if line.call is None:
            for key, value in line.names.items():
                namespace[f"{key}{n}"] = value
            body.extend((text, n) for text in line.extra.replace("{n}", str(n)).split("\n"))
        else:
            namespace[f"f{n}"] = line.call
            call = f"f{n}({', '.join(f'env[{s}]' for s in line.inputs)})"
            body.append((assignment(line.outputs, line.kind, call), n))
        if line.frees:
            body.append((" = ".join(f"env[{s}]" for s in line.frees) + " = None", n))
    parts = []
    source = []
    op_at = {}  # (a part's code, line number) -> the operation of the step on that line
    for text, n in body:
        if text.startswith("def part") and source:
            parts.append(_compiled("".join(source), name, namespace))
            source = []
        source.append(text + "\n" if text.startswith("def part") else f"    {text}\n")
        op_at[len(parts), len(source)] = lines[n].op
    if source:
        parts.append(_compiled("".join(source), name, namespace))
    parts = tuple(parts)
    op_at = {(parts[p].__code__, number): op for (p, number), op in op_at.items()}

    def run(env, frames):
        try:
            for part in parts:
                part(env, frames)
        except Exception as error:
            raise_named(error, _op_of(error.__traceback__, op_at))
        return env

    run.source = "".join(part.source for part in parts)
    return run


def _op_of(traceback, op_at):
    """The operation of the compiled line at which ``traceback`` left the plan's code."""
    while traceback is not None:
        op = op_at.get((traceback.tb_frame.f_code, traceback.tb_lineno))
        if op is not None:
            return op
        traceback = traceback.tb_next
    return None


def _compiled(source, name, namespace):
    header = source.split("(", 1)[0][4:]
    exec(compile(source, f"<jit plan of {name}>", "exec"), namespace)
    part = namespace.pop(header)
    part.source = source
    return part


def assignment(outputs, kind, call):
    if kind == NOTHING or not outputs:
        return call
    if kind == ARRAY:
        return f"env[{outputs[0]}] = {call}"
    if kind == SCALAR:
        return f"env[{outputs[0]}] = asarray({call})"
    return ", ".join(f"env[{s}]" for s in outputs) + f", = {call}"
