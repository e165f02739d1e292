"""Training a character-level language model with truncated BPTT: the loop behind `tensorgrad train`.

Each step takes the next window of the stream (T characters in each of B rows), runs the
model from the state the previous window left behind, and back-propagates through that
window only: the carried state is detached, so information flows across windows while
gradients stop at the window edge.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

import tensorgrad as tg
from nn.char_transformer import CharTransformer
from nn.charlm import CharRNN, sample_text
from nn.checkpoint import load, save
from nn.clip import clip_grad_norm
from nn.corpus import check_length, default_corpus, read_text
from nn.data import CharVocab, StreamBatcher, detach_state
from nn.losses import softmax_cross_entropy
from nn.optim import Adam
from nn.wavenet import CharWaveNet

LOG2E = 1 / math.log(2)  # nats → bits
PROGRESS_LINE_EVERY = 50  # steps between progress lines when the output is not a terminal


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint)."""

    text: str = ""  # a UTF-8 file; "": the built-in corpus
    model: str = "lstm"
    hidden: int = 128
    layers: int = 1
    heads: int = 4  # transformer only
    positions: str = "learned"  # transformer only: "learned" or "sinusoidal"
    seq_len: int = 64
    batch: int = 32
    steps: int = 2000
    lr: float = 3e-3
    clip: float = 5.0
    seed: int = 0
    out: str = "runs/charlm"
    sample_every: int = 250
    checkpoint_every: int = 100
    jit: bool = True  # each window's forward and loss as a traced plan (tg.jit): the same losses

    def validate(self):
        positive = ("hidden", "layers", "heads", "seq_len", "batch", "steps", "sample_every",
                    "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not self.clip > 0:
            raise ValueError(f"--clip must be > 0, got {self.clip}")
        if self.model == "transformer" and self.hidden % self.heads:
            raise ValueError(f"--hidden {self.hidden} must be a multiple of --heads {self.heads}")

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def build_model(vocab_size, config):
    """The character model ``config`` describes: a :class:`CharRNN`, or with ``model="transformer"``
    a :class:`CharTransformer` attending over windows of ``seq_len`` characters (no carried state),
    or with ``model="wavenet"`` a :class:`CharWaveNet` of ``layers`` dilated blocks (receptive field
    2^layers characters)."""
    if config.model == "transformer":
        return CharTransformer(vocab_size, config.hidden, config.layers, config.heads, context=config.seq_len,
                               positions=config.positions)
    if config.model == "wavenet":
        return CharWaveNet(vocab_size, config.hidden, config.layers)
    return CharRNN(vocab_size, config.hidden, config.layers, config.model)


def checkpoint_path(out):
    return os.path.join(out, "checkpoint.npz")


def load_text(config):
    """The training text and where it came from."""
    min_chars = config.batch * (config.seq_len + 1) * 10 // 9 + 2  # one window after the split
    if not config.text:
        text = default_corpus()
        check_length(text, min_chars, "the built-in corpus")
        return text, "the Python standard library's source (built-in corpus)"
    return read_text(config.text, min_chars), config.text


def evaluate(model, batcher, max_windows=None):
    """Mean cross-entropy in nats per character over the windows of ``batcher``."""
    total, count, state = 0.0, 0, None
    was_training = model.training
    model.eval()
    with tg.no_grad():
        for i, (inputs, targets) in enumerate(batcher):
            if max_windows is not None and i >= max_windows:
                break
            logits, state = model(inputs, state)
            loss = softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                         reduction="sum")
            total += loss.item()
            count += targets.size
    model.train(was_training)
    return total / count


class Trainer:
    """Owns the model, optimizer, data and history of one run; ``run()`` trains it."""

    def __init__(self, config, *, resume=False, log=print, progress=True):
        self.log = log
        self.progress = progress
        if resume:
            self._restore(config)
        else:
            config.validate()
            self.config = config
            text, self.source = load_text(config)
            self.vocab = CharVocab(text)
            self._build(text)
            self.step = 0
            self.losses = []
            self.validation = []  # (step, nats per character)
            self.state = None

    def _build(self, text):
        config = self.config
        ids = self.vocab.encode(text)
        self.prime = "\n" if "\n" in self.vocab.chars else text[0]
        split = len(ids) * 9 // 10
        self.train_batches = StreamBatcher(ids[:split], config.batch, config.seq_len)
        self.val_batches = StreamBatcher(ids[split:], min(config.batch, max(1, (len(ids) - split - 1)
                                                                           // (config.seq_len + 1))),
                                         config.seq_len)
        tg.manual_seed(config.seed)
        self.model = build_model(len(self.vocab), config)
        self.optimizer = Adam(self.model.parameters(), lr=config.lr)
        self.window_loss = tg.jit(self._window_loss) if config.jit else self._window_loss

    def _restore(self, config):
        path = checkpoint_path(config.out)
        if not os.path.exists(path):
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        saved = load(path)
        stored = TrainConfig.from_dict(saved["config"])
        stored.out, stored.steps = config.out, max(config.steps, int(saved["step"]))
        self.config = stored
        text, self.source = load_text(stored)
        self.vocab = CharVocab(text)
        if self.vocab.chars != str(saved["vocab"]):
            raise ValueError(f"--resume: the text has changed since {path} was written")
        self._build(text)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.step = int(saved["step"])
        self.losses = list(np.asarray(saved["history"]["loss"], dtype=float))
        self.validation = [tuple(p) for p in np.asarray(saved["history"]["validation"]).reshape(-1, 2)]
        carried = saved.get("carried", {})
        self.state = _state_from_arrays([carried[k] for k in sorted(carried)]) if carried else None
        tg.random.generator().bit_generator.state = json.loads(str(saved["rng"]))

    def save(self):
        carried = _state_to_arrays(self.state)
        save({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "vocab": self.vocab.chars,
            "config": asdict(self.config),
            "step": self.step,
            "carried": {f"{i:02d}": a for i, a in enumerate(carried)},
            "history": {"loss": np.asarray(self.losses, dtype=np.float64),
                        "validation": np.asarray(self.validation, dtype=np.float64).reshape(-1, 2)},
            "rng": json.dumps(tg.random.generator().bit_generator.state),
        }, checkpoint_path(self.config.out))

    def train_step(self):
        """One window of truncated BPTT; returns the loss in nats per character."""
        config = self.config
        window = self.step % len(self.train_batches)
        if window == 0:
            self.state = None  # a new pass over the text starts from a zero state
        inputs, targets = self.train_batches[window]
        loss, state = self.window_loss(inputs, targets, self.state)
        self.model.zero_grad()
        loss.backward()
        clip_grad_norm(self.model.parameters(), config.clip)
        self.optimizer.step()
        self.state = detach_state(state)
        self.step += 1
        value = loss.item()
        self.losses.append(value)
        return value

    def _window_loss(self, inputs, targets, state):
        """(the mean cross-entropy of the window, the state after it)."""
        logits, state = self.model(inputs, state)
        return softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)), state

    def sample(self, length=200):
        """``length`` characters sampled from the model (temperature 0.8) after ``self.prime``: a
        newline, so that the sample starts as a line does, or the text's first character in a
        text without one."""
        rng = np.random.default_rng([self.config.seed, self.step])
        return sample_text(self.model, self.vocab, length, prime=self.prime, temperature=0.8, rng=rng)

    def run(self):
        """Train up to ``config.steps``, with progress, samples and checkpoints."""
        try:
            from tqdm import tqdm
        except ImportError:
            raise ImportError("training shows its progress with tqdm, which is not installed: "
                              "pip install 'tensorgrad[train]'") from None

        config = self.config
        chars_per_step = config.batch * config.seq_len
        self.log(f"training a {config.layers}-layer {config.model.upper()} (hidden {config.hidden}, "
                 f"{sum(p.size for p in self.model.parameters()):,} parameters) on {self.source}: "
                 f"{len(self.vocab)} distinct characters, {len(self.train_batches)} windows of "
                 f"{config.batch}×{config.seq_len} per pass")
        if hasattr(self.model, "receptive_field"):
            self.log(f"a WaveNet carries no recurrent state: each prediction sees the last "
                     f"{self.model.receptive_field} characters (its receptive field), the window's "
                     f"first ones read from the end of the previous window")
        # On a terminal, a bar redrawn in place; in a log file or CI, where every redraw would
        # stay as a line of carriage returns, one plain line every PROGRESS_LINE_EVERY steps.
        terminal = self.progress and sys.stderr.isatty()
        lines = self.progress and not terminal
        bar = tqdm(total=config.steps, initial=self.step, disable=not terminal, file=sys.stderr,
                   unit="step", dynamic_ncols=True)
        write = bar.write if terminal else self.log
        speed = None
        try:
            while self.step < config.steps:
                start = time.perf_counter()
                loss = self.train_step()
                current = chars_per_step / (time.perf_counter() - start)
                speed = current if speed is None else 0.9 * speed + 0.1 * current  # a steady reading
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", bpc=f"{loss * LOG2E:.3f}", chars_s=f"{speed:,.0f}")
                if lines and (self.step % PROGRESS_LINE_EVERY == 0 or self.step == config.steps):
                    self.log(f"step {self.step}/{config.steps}: loss {loss:.3f} nats ({loss * LOG2E:.3f} "
                             f"bpc), {speed:,.0f} characters/s")
                if self.step % config.sample_every == 0 or self.step == 1:
                    val = evaluate(self.model, self.val_batches, max_windows=8)
                    self.validation.append((self.step, val))
                    write(f"--- step {self.step}: train loss {loss:.3f} nats ({loss * LOG2E:.3f} bpc), "
                          f"validation {val:.3f} nats ({val * LOG2E:.3f} bpc); sample:\n"
                          f"{self.sample()}\n---")
                if self.step % config.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            bar.close()
            self.save()
            self.log(f"interrupted at step {self.step}; checkpoint saved to "
                     f"{checkpoint_path(config.out)} (continue with --resume)")
            raise
        bar.close()
        val = evaluate(self.model, self.val_batches)
        if self.validation and self.validation[-1][0] == self.step:
            self.validation.pop()  # the estimate on a few windows gives way to the full one
        self.validation.append((self.step, val))
        self.save()
        curve = self.plot()
        self.log(f"done: {self.step} steps; validation loss {val:.4f} nats = {val * LOG2E:.4f} bits "
                 f"per character on the last 10% of the text")
        self.log(f"checkpoint: {checkpoint_path(config.out)}" + (f"; loss curve: {curve}" if curve else ""))
        return val

    def plot(self):
        """Write the loss curve beside the checkpoint; returns its path (None without matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        path = os.path.join(self.config.out, "loss.png")
        fig, ax = plt.subplots(figsize=(7, 4))
        bits = np.asarray(self.losses) * LOG2E
        ax.plot(np.arange(1, len(bits) + 1), bits, lw=0.8, alpha=0.6, label="training (per window)")
        if self.validation:
            steps, nats = np.asarray(self.validation).T
            ax.plot(steps, nats * LOG2E, "o-", label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("bits per character")
        ax.set_title(f"{self.config.model.upper()} character model")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _state_to_arrays(state):
    """The carried recurrent state (None, a Variable or a tuple of them) as a list of arrays."""
    if state is None:
        return []
    return [s.data for s in (state if isinstance(state, tuple) else (state,))]


def _state_from_arrays(arrays):
    variables = tuple(tg.Variable(a, requires_grad=False) for a in arrays)
    return variables[0] if len(variables) == 1 else variables
