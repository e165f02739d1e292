"""The `tensorgrad` command (also `python -m nn`): train, sample, export and graph.

Every expected failure (a bad file, a bad option, a checkpoint of another model) ends in a
one-line message and a non-zero exit status, never a traceback: each step that bad input
can make fail turns the errors it expects into a :class:`CommandError`, the one error
``main`` reports in a line. Anything else is a bug, and shows its traceback.
"""

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import fields

import numpy as np

from nn.threads import set_num_threads
from nn.trainer import TrainConfig

MODELS = ("lstm", "gru", "rnn", "transformer", "wavenet")


class CommandError(Exception):
    """A failure to report in one line, and the exit status it ends with."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def expected(*errors):
    """Turn the ``errors`` raised inside, which bad input causes, into a CommandError (status 1
    for the system's errors: files, missing programs and packages)."""
    try:
        yield
    except errors as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise CommandError(message, 1 if isinstance(error, OSError | ImportError | RuntimeError) else 2) \
            from error


def build_parser():
    parser = argparse.ArgumentParser(prog="tensorgrad", description=(
        "Train a character-level language model with tensorgrad, sample from it, or draw the "
        "computation graph of an unrolled recurrent network."))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    defaults = TrainConfig()
    train = commands.add_parser("train", help="train a character-level language model",
                                description="Train a character-level language model with truncated "
                                            "BPTT; with no options, a small LSTM on a built-in corpus.")
    train.add_argument("--text", metavar="FILE", help="UTF-8 text to train on (default: the source "
                       "of Python's standard library, read from this machine)")
    train.add_argument("--model", choices=MODELS, help=f"recurrent layer, a causal transformer over each "
                       f"window with no state carried between windows, or a WaveNet's causal dilated "
                       f"convolutions (default {defaults.model})")
    for name, kind, help_text in [
        ("hidden", int, "hidden units per layer"), ("layers", int, "recurrent layers (wavenet: blocks)"),
        ("heads", int, "attention heads (transformer)"),
        ("seq_len", int, "characters per window of truncated BPTT"), ("batch", int, "parallel rows"),
        ("steps", int, "optimizer steps in total"), ("lr", float, "Adam learning rate"),
        ("clip", float, "maximum global gradient norm"), ("seed", int, "random seed"),
        ("sample_every", int, "steps between printed samples (each starts after a newline, or after the "
                                "text's first character if it has none)"),
        ("checkpoint_every", int, "steps between checkpoints"),
    ]:
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar="N" if kind is int else "X",
                           help=f"{help_text} (default {getattr(defaults, name)})")
    train.add_argument("--positions", choices=("learned", "sinusoidal"),
                       help=f"position encoding of the transformer (default {defaults.positions})")
    train.add_argument("--out", metavar="DIR", help=f"output directory (default {defaults.out})")
    train.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.npz")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--no-jit", dest="jit", action="store_false", default=None,
                       help="run every window eagerly instead of replaying its traced plan (tg.jit)")
    train.add_argument("--threads", type=int, default=1, metavar="N",
                       help="BLAS threads (default 1: for a small model's matrices, more threads "
                            "mostly wait on each other)")

    sample = commands.add_parser("sample", help="generate text from a trained checkpoint")
    sample.add_argument("--checkpoint", required=True, metavar="PATH")
    sample.add_argument("--length", type=int, default=500, metavar="N")
    sample.add_argument("--temperature", type=float, default=0.8, metavar="X",
                        help="> 0; low is conservative, high is adventurous (default 0.8)")
    sample.add_argument("--prime", default="", metavar="TEXT", help="text to start from")
    sample.add_argument("--top-k", type=int, default=None, metavar="K")
    sample.add_argument("--seed", type=int, default=None, metavar="N")
    sample.add_argument("--threads", type=int, default=1, metavar="N", help="BLAS threads (default 1)")

    export = commands.add_parser("export", help="write a checkpoint's weights as .safetensors for PyTorch",
                                 description="Write the model weights of a train checkpoint as a "
                                             ".safetensors file, under PyTorch's parameter names.")
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz written by train")
    export.add_argument("--out", required=True, metavar="FILE.safetensors")

    graph = commands.add_parser("graph", help="draw the unrolled computation graph of a small model")
    graph.add_argument("--model", choices=MODELS, default="lstm")
    graph.add_argument("--steps", type=int, default=3, metavar="N", help="time steps to unroll")
    graph.add_argument("--collapse", action="store_true", help="draw each time step as one node")
    graph.add_argument("--window", metavar="START:STOP", help="draw steps START to STOP - 1 in full and "
                       "fold the steps before and after into one node each (default: all in full)")
    graph.add_argument("--time", choices=("right", "down"), default="right",
                       help="the direction time runs in the picture (default right)")
    graph.add_argument("--out", default="graph.svg", metavar="FILE",
                       help="output file: .svg, .png, .pdf or .dot (default graph.svg)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            with expected(ValueError, ImportError):
                set_num_threads(args.threads)
        commands = {"train": run_train, "sample": run_sample, "export": run_export, "graph": run_graph}
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except CommandError as error:
        print(f"tensorgrad {args.command}: error: {error}", file=sys.stderr)
        return error.status


def run_train(args):
    from nn.trainer import Trainer, checkpoint_path

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    with expected(ValueError):
        config = TrainConfig(**given)
    _check_writable(config.out)
    if args.resume and not os.path.exists(checkpoint_path(config.out)):
        raise CommandError(f"--resume: no checkpoint at {checkpoint_path(config.out)}")
    with expected(ValueError, OSError):  # the text, the checkpoint to resume from
        trainer = Trainer(config, resume=args.resume, progress=not args.quiet)
    with expected(ImportError, OSError):  # tqdm, writing checkpoints
        trainer.run()
    return 0


def run_sample(args):
    from nn.charlm import sample_text
    from nn.checkpoint import load
    from nn.data import CharVocab
    from nn.trainer import build_model

    if not args.temperature > 0:
        raise CommandError(f"--temperature must be > 0, got {args.temperature}")
    if args.length < 0:
        raise CommandError(f"--length must be >= 0, got {args.length}")
    with expected(ValueError, OSError):
        saved = load(args.checkpoint)
    missing = [k for k in ("model", "config", "vocab") if k not in saved]
    if missing:
        raise CommandError(f"{args.checkpoint} is not a tensorgrad train checkpoint "
                           f"(no {', '.join(missing)})")
    with expected(ValueError, TypeError, RuntimeError):  # a config or weights of another model
        config = TrainConfig.from_dict(saved["config"])
        vocab = CharVocab.from_chars(str(saved["vocab"]))
        model = build_model(len(vocab), config)
        model.load_state_dict(saved["model"])
    unknown = sorted({c for c in args.prime if c not in vocab.chars})
    if unknown:
        raise CommandError(f"--prime has characters the model has never seen: {''.join(unknown)!r}")
    rng = np.random.default_rng(args.seed)
    print(sample_text(model, vocab, args.length, prime=args.prime, temperature=args.temperature,
                   top_k=args.top_k, rng=rng))
    return 0


def run_export(args):
    from nn.export import export_checkpoint
    from nn.safetensors_io import SUFFIX

    if not args.out.endswith(SUFFIX):
        raise CommandError(f"--out must end in {SUFFIX}, got {args.out!r}")
    with expected(ValueError, TypeError, OSError, ImportError):
        names = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {len(names)} arrays ({', '.join(names)}) to {args.out}; in PyTorch: "
          f"model.load_state_dict(safetensors.torch.load_file({args.out!r}))")
    return 0


def run_graph(args):
    from nn.graph import draw_unrolled
    from tensorgrad.viz import DotNotFoundError

    if args.steps < 1:
        raise CommandError(f"--steps must be at least 1, got {args.steps}")
    with expected(ValueError, OSError, DotNotFoundError):  # the file's format, Graphviz missing
        path = draw_unrolled(args.model, args.steps, args.out, collapse=args.collapse,
                             window=_window(args.window), time=args.time)
    print(f"wrote the graph of a {args.steps}-step {args.model.upper()} to {path}")
    return 0


def _window(text):
    """``--window START:STOP`` as a slice (either end may be left out); None if not given."""
    if text is None:
        return None
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        raise CommandError(f"--window must be START:STOP, such as 10:15, got {text!r}") from None


def _check_writable(directory):
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise CommandError(f"cannot write to output directory {directory}: "
                           f"{error.strerror or error}") from None
