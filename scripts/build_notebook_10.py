"""Build and execute notebooks/10_transformer_vs_lstm.ipynb (run from the repository root)."""
# ruff: noqa: E501 - the notebook's equations and code cells keep their own line lengths

from notebook_builder import build, code, md

cells = [
    md(r"""# 10. Is the LSTM dead? The Transformer, measured

The course notes end on two lists. *LSTM problems: difficult to train, very long gradient
paths, slow, parallelization is impossible.* *Transformer: based on attention mechanism,
parallelization is now possible.* This notebook measures those claims on this machine, with
the same engine for both networks:

1. a character language model as an LSTM and as a Transformer with **the same number of
   parameters**, trained on the same text for **the same wall-clock budget**: validation
   bits per character against time;
2. the time of one forward pass over $T$ positions for both as $T$ grows: the LSTM's $T$
   sequential steps against the Transformer's few big matrix products over all positions;
3. what makes the Transformer a language model at all: the causal mask, and what its heads
   attend to.

The Transformer (`nn.CharTransformer`, also `tensorgrad train --model transformer`) embeds
each character, adds a learned vector per position, and applies pre-norm encoder layers

$$x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x)), \qquad x \leftarrow x + W_2\,\mathrm{relu}(W_1\,\mathrm{LN}(x)),$$

with multi-head self-attention $\mathrm{softmax}(Q K^\top / \sqrt{d} + M)\,V$ per head, where the
causal mask $M$ is $-\infty$ above the diagonal. It carries no state from one window to the
next: each window of 64 characters is read on its own, all positions at once."""),
    code(r"""import time

import matplotlib.pyplot as plt
import numpy as np

import nn
import tensorgrad as tg
from nn.trainer import LOG2E, Trainer, TrainConfig, evaluate

nn.set_num_threads(1)  # one BLAS thread for both: the comparison is per core
BUDGET = 15            # seconds of training per model (excluding evaluation)
SEQ_LEN, BATCH = 64, 16


def parameters(model):
    return sum(p.size for p in model.parameters())


quiet = dict(log=lambda *args: None, progress=False)
lstm = Trainer(TrainConfig(model="lstm", hidden=96, seq_len=SEQ_LEN, batch=BATCH, lr=3e-3, out="runs/nb10-lstm"), **quiet)
target = parameters(lstm.model)
# The Transformer (2 layers, 4 heads) whose width d gives the parameter count nearest the LSTM's.
candidates = {d: Trainer(TrainConfig(model="transformer", hidden=d, layers=2, heads=4, seq_len=SEQ_LEN,
                                     batch=BATCH, lr=3e-3, out="runs/nb10-transformer"), **quiet)
              for d in range(40, 72, 4)}
d_model = min(candidates, key=lambda d: abs(parameters(candidates[d].model) - target))
transformer = candidates[d_model]
print(f"text: {lstm.source}; {len(lstm.vocab)} distinct characters")
print(f"LSTM, hidden 96:                 {target:,} parameters")
print(f"Transformer, d_model {d_model}, 2 layers: {parameters(transformer.model):,} parameters")
assert abs(parameters(transformer.model) - target) / target < 0.1"""),
    md(r"""## Same parameters, same budget: bits per character against wall time

Each model trains for the same number of seconds on the same windows (Adam, learning rate
0.003, gradient norm clipped at 5), with the validation loss (on the last 10% of the text)
measured every few steps; its time is not counted."""),
    code(r"""def race(trainer, budget=BUDGET, every=10):
    curve, elapsed = [], 0.0
    while elapsed < budget:
        start = time.perf_counter()
        for _ in range(every):
            trainer.train_step()
        elapsed += time.perf_counter() - start
        curve.append((elapsed, trainer.step, evaluate(trainer.model, trainer.val_batches, max_windows=4) * LOG2E))
    return np.array(curve)


curves = {"LSTM": race(lstm), "Transformer": race(transformer)}
fig, ax = plt.subplots(figsize=(7, 4))
for name, curve in curves.items():
    ax.plot(curve[:, 0], curve[:, 2], label=f"{name} ({int(curve[-1, 1])} steps)")
ax.axhline(np.log2(len(lstm.vocab)), color="0.6", ls=":", label="uniform guess")
ax.set_xlabel("training time (s)"); ax.set_ylabel("validation bits per character"); ax.legend()
plt.show()
for name, curve in curves.items():
    print(f"{name:12s} {int(curve[-1, 1]):4d} steps in {curve[-1, 0]:.1f} s "
          f"({curve[-1, 1] / curve[-1, 0]:.1f} steps/s): validation {curve[-1, 2]:.3f} bits per character")
assert all(curve[-1, 2] < np.log2(len(lstm.vocab)) - 2 for curve in curves.values())  # both learn"""),
    code(r"""leader = min(curves, key=lambda name: curves[name][-1, 2])
rate = {name: curve[-1, 1] / curve[-1, 0] for name, curve in curves.items()}
print(f"after {BUDGET} s the {leader} is ahead; the LSTM took {rate['LSTM'] / rate['Transformer']:.1f}× "
      "as many steps per second as the Transformer on this run (a time, so it moves with the machine's load)")
# What a step costs, counted rather than timed: the multiply-adds of the matmuls per position.
H, d, V, T = 96, d_model, len(lstm.vocab), SEQ_LEN
lstm_macs = 4 * H * (H + H) + H * V  # the four gates from [x_t, h_(t-1)], then the head
# per layer: Q, K, V and the output projection; q·k and α·v over T positions; the feed-forward (4d wide)
transformer_macs = 2 * (4 * d * d + 2 * T * d + 2 * d * 4 * d) + d * V
print(f"multiply-adds per position: LSTM {lstm_macs:,}, Transformer {transformer_macs:,}")
assert transformer_macs > lstm_macs  # at this size a Transformer step costs more arithmetic"""),
    md(r"""At this size a Transformer step costs more arithmetic than an LSTM step: attention over every pair
of positions in the window, and a feed-forward block four times as wide, against the
LSTM's fused cell over 64 steps. In our runs the LSTM was also ahead in bits per character
after the budget: the Transformer has to learn from scratch what recurrence gives the LSTM
for free (the order of the characters, through its position vectors), and a quarter of a
minute of CPU is the very start of both learning curves. The Transformer's advantages (no
recurrence to wait for, so all positions of a long sequence in parallel, on hardware made
for big matrix products; a path of length one from any position to any earlier one) show
at sizes this notebook cannot afford. What we *can* measure is how each forward pass
scales with the sequence length.

## One forward pass over T positions

The LSTM must run $T$ steps one after the other, each a small $(B, H) \times (H, 4H)$
product plus the cell's elementwise work. The Transformer computes all positions of a layer
in a few large products, but attention compares every position with every other: $T^2$
scores per head. Time per forward (no gradient), batch 8, the two models above:"""),
    code(r"""def forward_seconds(model, T, repeats=3):
    ids = np.random.default_rng(0).integers(0, len(lstm.vocab), (T, 8))
    best = np.inf
    with tg.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids)
            best = min(best, time.perf_counter() - start)
    return best


lengths = [8, 16, 32, 64, 128, 256, 512]
# A Transformer whose positions reach 512, with the trained one's layers (the timing does not
# depend on the weights); the LSTM handles any length.
long_transformer = nn.CharTransformer(len(lstm.vocab), d_model, 2, 4, context=max(lengths))
times = {"LSTM": [], "Transformer": []}
for T in lengths:  # interleaved, so that both see the same load on the machine
    times["LSTM"].append(forward_seconds(lstm.model, T))
    times["Transformer"].append(forward_seconds(long_transformer, T))
fig, ax = plt.subplots(figsize=(7, 4))
for name, seconds in times.items():
    ax.loglog(lengths, np.array(seconds) * 1e3, "o-", label=name)
ax.set_xlabel("sequence length T"); ax.set_ylabel("forward time (ms)"); ax.legend()
plt.show()
print("    T   LSTM (ms)   Transformer (ms)   faster")
for T, a, b in zip(lengths, times["LSTM"], times["Transformer"]):
    print(f"{T:5d} {a * 1e3:11.2f} {b * 1e3:18.2f}   {'LSTM' if a < b else 'Transformer'}")
lstm_growth = times["LSTM"][-1] / times["LSTM"][0]
transformer_growth = times["Transformer"][-1] / times["Transformer"][0]
print(f"from T = 8 to 512 (64×): LSTM {lstm_growth:.0f}× slower, Transformer {transformer_growth:.0f}× slower")
assert lstm_growth > 16  # T sequential steps: about linear in T"""),
    md(r"""The LSTM's time grows about in proportion to $T$: the steps cannot overlap, and each is a
fixed amount of work (and of Python overhead). The Transformer's grows more slowly at
small $T$, where its few large NumPy calls cost mostly their fixed overhead, and then
faster than linearly, as the $T \times T$ attention matrices come to dominate; the table
says where each is faster on this CPU (here, one core: NumPy runs the LSTM's small
products as fast as the Transformer's big ones). On a GPU, where a big matrix product
costs about as much as a small one, the Transformer's "one matmul over all positions"
pays off far more than here, while the LSTM's $T$ steps stay sequential on any hardware.
That is the notes' *parallelization is now possible*.

## The causal mask

A language model predicts character $t + 1$ from characters $1..t$, so position $t$ may
attend only to positions $\le t$. The mask $M$ added to the scores is $0$ on and below the
diagonal and $-\infty$ above it, so that $\mathrm{softmax}$ gives the future weight
$e^{-\infty} = 0$ (`nn.generate_square_subsequent_mask`, PyTorch's helper)."""),
    code(r"""mask = nn.generate_square_subsequent_mask(12)
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(np.isfinite(mask), cmap="Greens")
ax.set_xlabel("key position j (attended to)"); ax.set_ylabel("query position i")
ax.set_title("allowed (green): j ≤ i")
plt.show()
print(mask[:4, :4])"""),
    md(r"""## What a head attends to

The first layer's four heads, on a line of Python from the validation text: row $i$ is the
distribution of position $i$'s attention over the positions $j \le i$."""),
    code(r"""model = transformer.model
text = transformer.vocab.decode(transformer.val_batches[0][0][:32, 0])
ids = transformer.vocab.encode(text).reshape(-1, 1)
layer = model.encoder.layers[0]
with tg.no_grad():
    x = layer.norm1(model.position(model.embedding(ids)))
    _, weights = layer.self_attn(x, x, x, attn_mask=nn.generate_square_subsequent_mask(len(ids)),
                                 average_attn_weights=False)
weights = weights.data[0]  # (heads, T, T)
fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
for h, ax in enumerate(axes):
    ax.imshow(weights[h], cmap="magma")
    ax.set_xticks(range(len(text)), list(text.replace("\n", "⏎")), fontsize=6)
    ax.set_yticks(range(len(text)), list(text.replace("\n", "⏎")), fontsize=6)
    distance = (weights[h] * (np.arange(len(text))[:, None] - np.arange(len(text))[None, :])).sum(axis=1).mean()
    ax.set_title(f"head {h}: mean distance {distance:.1f}")
plt.show()
assert np.allclose(np.triu(weights, k=1), 0)  # no head looks ahead
assert np.allclose(weights.sum(axis=-1), 1)
print(f"text: {text!r}")
print("weight on the current and the previous character, per head:",
      [f"{np.trace(w):.1f}+{np.trace(w, offset=-1):.1f} of {len(text)}" for w in weights])"""),
    md(r"""After seconds of training the heads are only starting to differ: each puts much of its
weight on the current and the previous few characters (the mean distances above) and
spreads the rest over the recent past. Larger models trained for longer grow heads with
clear jobs (one that copies the previous character, one that looks back to the last space
or opening bracket); the drawing that shows them is the same.

**So, is the LSTM dead?** On this CPU, at this size, the LSTM is at least as good per
second of training and it is far cheaper per generated character (one step, with its state carried,
against attending over the whole context). The Transformer's case is made by what it does
*not* need: no sequential dependency between positions, so training parallelises over the
sequence, and a direct path of length one from any position to any earlier one instead of
the LSTM's $T$ steps of gradient flow."""),
]

build(cells, "notebooks/10_transformer_vs_lstm.ipynb")
