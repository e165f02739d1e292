"""Build and execute notebooks 11 (convolution over time, WaveNet) and 12 (image captioning).

    PYTHONPATH=$PWD python scripts/build_notebooks_conv.py [11] [12]

from the repository root. Each notebook is a list of (kind, text) cells below, executed and
written with its outputs by notebook_builder.build.
"""

import sys

from notebook_builder import build, code, md

CONVOLUTION = [("markdown", r"""
# 11. Convolution over time: 1-D convolutions and WaveNet

The notes offer two ways past a recurrent network's short memory besides the LSTM:

* "1D Conv layer can help detect long-term pattern by reducing length of sequence"
* "WaveNet: dilated convolution layer. The dilation rate is doubled for each layer. The lower
  layers may identify short-term patterns, while the higher layers may identify long-term
  patterns. **Causal padding**: padding the layer's input with zeros in the front."

This notebook builds both from `F.conv1d` and `nn.CausalConv1d`, draws what each output can
see, and races a WaveNet against an LSTM of the same size on next-character prediction.
"""), ("code", r"""
import time

import matplotlib.pyplot as plt
import numpy as np

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.corpus import default_corpus
from nn.data import CharVocab, StreamBatcher

nn.set_num_threads(1)  # a small model's matrices run fastest on one BLAS thread
"""), ("markdown", r"""
## A 1-D convolution is a sliding dot product

For an input $x$ with $C$ channels and $L$ steps and a kernel $W$ of $k$ steps,

$$y_{o,t} = b_o + \sum_{c=1}^{C} \sum_{j=0}^{k-1} W_{o,c,j}\; x_{c,\,t\cdot s + j\cdot d}$$

with stride $s$ and dilation $d$: the kernel is laid on the input at every position and a dot
product taken. The notes' picture uses kernel size 2. Below, a kernel $[-1, 1]$ slides over
one channel and computes differences of neighbours; the loop of dot products and `F.conv1d`
agree.
"""), ("code", r"""
x = np.array([[0, 1, 3, 6, 10, 15, 21, 28]], dtype=np.float64)  # (C=1, L=8): the triangle numbers
kernel = np.array([[[-1.0, 1.0]]])                            # (C_out=1, C_in=1, k=2)
y = F.conv1d(x, kernel).data
by_hand = np.array([[kernel[0, 0] @ x[0, t:t + 2] for t in range(x.shape[1] - 1)]])
print("input     ", x[0])
print("conv1d    ", y[0])
print("dot products", by_hand[0])
assert np.array_equal(y, by_hand) and np.array_equal(y[0], np.arange(1, 8))
"""), ("markdown", r"""
### Why "1-D"?

The notes' quiz: *why is this a 1D CNN and not a 2D CNN? Because the kernel moves in one
direction.* The input may have many channels (an embedding per character has 64, say), and
the kernel covers all of them at once, but it slides only along time. So shifting the input
in time shifts the output in time, and nothing else: the same pattern is detected wherever it
occurs.
"""), ("code", r"""
rng = np.random.default_rng(0)
conv = nn.Conv1d(4, 3, kernel_size=3).double()
x = rng.standard_normal((1, 4, 20))
print("input (B, C_in, L) =", x.shape, " weight (C_out, C_in, k) =", conv.weight.shape,
      " output =", conv(x).shape)
shifted = np.roll(x, 5, axis=-1)
assert np.allclose(conv(shifted).data[..., 5:], conv(x).data[..., :-5])  # shift in, shift out
"""), ("markdown", r"""
## Causal padding: zeros in the front

A convolution for next-step prediction must not see the future: output $t$ may use inputs
$\le t$ only. PyTorch's `padding='same'` pads both ends, so the output at $t$ reads
$x_{t+1}$. *Causal* padding puts all $(k-1)\cdot d$ zeros in front, so the output is as long
as the input and output $t$ reads $x_{t-(k-1)d}, \ldots, x_t$. The Jacobians
$\partial y_t / \partial x_s$ (computed by backpropagation) show it: a band on and below the
diagonal for the causal convolution, one step above it for 'same'.
"""), ("code", r"""
def dependence(layer, length=12):
    # |∂y_t/∂x_s| summed over channels: which inputs s each output t reads.
    rows = []
    for t in range(length):
        x = tg.Variable(np.random.default_rng(1).standard_normal((1, 2, length)))
        layer(x)[..., t].sum().backward()
        rows.append(np.abs(x.grad.data).sum(axis=(0, 1)) > 0)
    return np.array(rows)

tg.manual_seed(0)
same = dependence(nn.Conv1d(2, 2, 3, padding="same").double())
causal = dependence(nn.CausalConv1d(2, 2, 3).double())
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, grid, title in zip(axes[:2], (same, causal), ("padding='same' (looks ahead)", "causal padding")):
    ax.imshow(grid, cmap="Blues")
    ax.set_title(title)
    ax.set_xlabel("input step s")
    ax.set_ylabel("output step t")
padded = np.concatenate([np.zeros(2), np.arange(1, 11)])
axes[2].bar(np.arange(12), padded, color=["0.7"] * 2 + ["C0"] * 10)
axes[2].set_title("the causally padded input: (k-1)d = 2 zeros in front")
axes[2].set_xticks(range(12), ["0", "0"] + [f"x{t}" for t in range(1, 11)], fontsize=7)
fig.tight_layout()
plt.show()
assert not np.triu(causal, 1).any() and causal[5, 3:6].all()  # never later than t; t-2..t
assert same[5, 6]                                             # 'same' reads x_{t+1}
"""), ("markdown", r"""
## Dilation grows the receptive field

Stack causal convolutions with kernel size 2 and dilations 1, 2, 4, 8: each layer looks
twice as far back as the one below, so $n$ layers see
$1 + (k-1)\sum_i d_i = 2^n$ steps, where $n$ undilated layers would see $n + 1$. The picture
marks the nodes that reach the last output; the module computes the same number
(`receptive_field`), and the support of the gradient measures it.
"""), ("code", r"""
layers, T = 4, 20
fig, ax = plt.subplots(figsize=(11, 3.4))
reach = {T - 1}
levels = [reach]
for level in range(layers, 0, -1):      # from the output down to the input
    d = 2 ** (level - 1)
    reach = {s for t in reach for s in (t, t - d) if s >= 0}
    levels.append(reach)
levels = levels[::-1]                   # levels[0]: the inputs that reach the output
for level, active in enumerate(levels):
    ax.scatter(range(T), [level] * T, c=["C3" if t in active else "0.85" for t in range(T)], s=40, zorder=3)
    if level:
        d = 2 ** (level - 1)
        for t in active:
            for s in (t, t - d):
                ax.plot([s, t], [level - 1, level], color="C3", lw=1)
ax.set_yticks(range(layers + 1), ["input"] + [f"dilation {2 ** i}" for i in range(layers)])
ax.set_xlabel("time step")
ax.set_title(f"inputs reaching the last output: {len(levels[0])} = receptive field")
plt.show()

tg.manual_seed(0)
wavenet = nn.WaveNet(3, layers).double()
x = tg.Variable(np.random.default_rng(2).standard_normal((1, 3, T)))
wavenet(x)[..., T - 1].sum().backward()
measured = np.flatnonzero(np.abs(x.grad.data).sum(axis=(0, 1)))
print(wavenet)
print("inputs with a nonzero gradient:", measured)
assert wavenet.receptive_field == len(levels[0]) == 2 ** layers == len(measured)
assert set(measured) == levels[0]
"""), ("markdown", r"""
### The residual block

Each WaveNet layer is the block of van den Oord et al. (2016), with the gated activation of
the PixelCNN:

$$z = \tanh(W_f * x) \odot \sigma(W_g * x), \qquad x \leftarrow x + W_r z, \qquad
\text{skip} \mathrel{+}= W_s z$$

($*$ the causal dilated convolution, $W_r$ and $W_s$ convolutions of kernel size 1). The sum of
the skip outputs, through two more 1×1 convolutions, gives the next character's logits
(`nn.CharWaveNet`).
"""), ("markdown", r"""
## WaveNet against LSTM on the same next-character task

Both models read the Python standard library's source, windows of 128 characters, and get
the same wall-clock budget; the LSTM's hidden size is chosen so that the two have (nearly) the
same number of parameters. A WaveNet has no recurrent state: what it passes from one window
to the next is the last $R - 1$ characters themselves, so that every prediction sees its full
receptive field $R$. Validation bits per character are plotted against training time.
"""), ("code", r"""
text = default_corpus(200_000)
vocab = CharVocab(text)
ids = vocab.encode(text)
split = len(ids) * 9 // 10
BATCH, SEQ_LEN, BUDGET = 16, 128, 15.0   # seconds of training per model
train_batches = StreamBatcher(ids[:split], BATCH, SEQ_LEN)
val_batches = StreamBatcher(ids[split:], BATCH, SEQ_LEN)

def count(model):
    return sum(p.size for p in model.parameters())

tg.manual_seed(0)
wavenet = nn.CharWaveNet(len(vocab), hidden_size=56, num_layers=5)
sizes = {h: count(nn.CharRNN(len(vocab), h, 1, "lstm")) for h in range(16, 160, 2)}
lstm_hidden = min(sizes, key=lambda h: abs(sizes[h] - count(wavenet)))
lstm = nn.CharRNN(len(vocab), lstm_hidden, 1, "lstm")
print(f"WaveNet: {count(wavenet):,} parameters, receptive field {wavenet.receptive_field} characters")
print(f"LSTM:    {count(lstm):,} parameters (hidden {lstm_hidden})")
assert abs(count(lstm) - count(wavenet)) / count(wavenet) < 0.05
"""), ("code", r"""
LOG2E = 1 / np.log(2)

def validation_bpc(model, windows=6):
    total, n, state = 0.0, 0, None
    with tg.no_grad():
        for k in range(windows):
            inputs, targets = val_batches[k]
            logits, state = model(inputs, state)
            total += nn.softmax_cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1),
                                              reduction="sum").item()
            n += targets.size
    return total / n * LOG2E

def race(model, budget=BUDGET, every=1.5):
    optimizer = nn.optim.Adam(model.parameters(), lr=3e-3)
    curve, state, spent, step, next_eval = [(0.0, validation_bpc(model))], None, 0.0, 0, every
    while spent < budget:
        start = time.perf_counter()
        inputs, targets = train_batches[step % len(train_batches)]
        logits, state = model(inputs, state)
        loss = nn.softmax_cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1))
        model.zero_grad()
        loss.backward()
        nn.clip_grad_norm(model.parameters(), 5.0)
        optimizer.step()
        state = nn.data.detach_state(state)
        spent += time.perf_counter() - start
        step += 1
        if spent >= next_eval:
            curve.append((spent, validation_bpc(model)))
            next_eval += every
    return np.array(curve), step

curves, speed = {}, {}
for name, model in (("WaveNet", wavenet), ("LSTM", lstm)):
    curves[name], steps = race(model)
    speed[name] = steps * BATCH * SEQ_LEN / BUDGET
    print(f"{name}: {steps} steps in {BUDGET:.0f} s ({speed[name]:,.0f} characters/s), "
          f"validation {curves[name][-1, 1]:.2f} bits per character")
unigram = np.bincount(ids, minlength=len(vocab)) / len(ids)
unigram_bpc = -(unigram[unigram > 0] * np.log2(unigram[unigram > 0])).sum()
fig, ax = plt.subplots(figsize=(7, 4))
for name, curve in curves.items():
    ax.plot(curve[:, 0], curve[:, 1], "o-", label=name)
ax.axhline(unigram_bpc, color="0.5", ls="--", label="character frequencies alone")
ax.set_xlabel("training time (s)")
ax.set_ylabel("validation bits per character")
ax.legend()
plt.show()
assert all(curve[-1, 1] < unigram_bpc for curve in curves.values())  # both learned more than frequencies
"""), ("markdown", r"""
The machine these notebooks run on is shared, so the time axis is noisy. Two things set the
pace. The WaveNet computes all positions of a window at once, one matrix product per layer,
where the LSTM takes 128 steps one after the other; but at equal parameters it does more
arithmetic per predicted character: it re-reads the $R - 1$ characters before the window at
every layer, and each position passes through all of its layers. On one CPU core arithmetic
is what counts; parallel hardware, where the LSTM's sequential steps cannot be spread out, is
where the convolution pays. Counting the multiply-adds of one window:
"""), ("code", r"""
def weights(module):
    # Weights multiply; biases only add.
    return sum(p.size for name, p in module.named_parameters() if "weight" in name)

R = wavenet.receptive_field
macs = {"WaveNet": (SEQ_LEN + R - 1) * weights(wavenet.wavenet)
                   + SEQ_LEN * (weights(wavenet.hidden) + weights(wavenet.head)),
        "LSTM": SEQ_LEN * (weights(lstm.rnn) + weights(lstm.head))}
for name in macs:
    print(f"{name}: {macs[name] / SEQ_LEN:,.0f} multiply-adds per predicted character")
assert macs["WaveNet"] > macs["LSTM"]
"""), ("markdown", r"""
## How much history each can use

The WaveNet's memory is exact and finite: the prediction at $t$ is a function of the last
$R$ characters and of nothing earlier. The LSTM's is unbounded in principle and fading in
practice. The gradient of one prediction's loss with respect to the input embeddings at each
lag shows both: exactly zero beyond lag $R - 1$ for the WaveNet, small but nonzero for the LSTM.
"""), ("code", r"""
def sensitivity(model, inputs, targets):
    # |∂ loss of the last prediction / ∂ embedding of the input `lag` steps back|, lag = 0, 1, ...
    embedded = model.embedding(inputs)
    if isinstance(model, nn.CharWaveNet):
        features = model.wavenet(embedded.transpose(1, 2, 0))
        logits = model.head(F.relu(model.hidden(F.relu(features)))).transpose(2, 0, 1)
    else:
        output, _ = model.rnn(embedded)
        logits = model.head(output)
    loss = nn.softmax_cross_entropy(logits[-1], targets[-1])
    (g,) = tg.grad(loss, [embedded])
    return np.sqrt((g.data ** 2).sum(axis=(1, 2)))[::-1]

long_inputs = np.concatenate([val_batches[k][0] for k in range(3)])   # 3 windows of history
long_targets = np.concatenate([val_batches[k][1] for k in range(3)])
lags = {name: sensitivity(model, long_inputs, long_targets) for name, model in (("WaveNet", wavenet),
                                                                                  ("LSTM", lstm))}
R = wavenet.receptive_field
fig, ax = plt.subplots(figsize=(8, 3.6))
for name, g in lags.items():
    ax.semilogy(np.arange(len(g)), np.maximum(g, 1e-30), label=name)
ax.axvline(R - 1, color="0.5", ls=":", label=f"R - 1 = {R - 1}")
ax.set_ylim(1e-12, None)
ax.set_xlabel("lag (characters back)")
ax.set_ylabel("gradient norm")
ax.legend()
plt.show()
assert not lags["WaveNet"][R:].any() and lags["WaveNet"][R - 1] > 0
assert (lags["LSTM"][R:2 * R] > 0).all()
print(f"LSTM: the gradient at lag {R} is {lags['LSTM'][R] / lags['LSTM'][0]:.1e} of the gradient at lag 0")
"""), ("markdown", r"""
So a WaveNet trades the LSTM's open-ended (but fading) memory for a fixed window that it reads
in parallel. Its window grows exponentially with depth: ten layers with kernel size 2 see
1024 steps, which is how WaveNet models audio at 16 000 samples a second. The notes' other
remark, that a strided 1-D convolution "reduces the length of the sequence", is the same
trade made differently: `nn.Conv1d(C, C, k, stride=2)` halves the length that a recurrent
layer on top must remember across.
""")]

CAPTIONING = [("markdown", r"""
# 12. Image captioning: an image vector at the first step

The notes' sequence-output example (Karpathy & Fei-Fei, *Deep Visual-Semantic Alignments for
Generating Image Descriptions*, 2015):

* "The RNN takes a series of input words (e.g. START, 'straw', 'hat', ...), and a series of
  output words (e.g. 'straw', 'hat', END)"
* "The image representation is used to initialize the hidden state"
* "To predict a sentence: the image representation $b_v$ is computed; $h_0$ is set to 0 and
  $x_1$ to the START vector; the network computes the distribution over the first word $y_1$;
  a word is sampled from the distribution and its embedding vector is set as $x_2$; this
  process is repeated until the END token is generated."

$$b_v = W_{hi}\,[\mathrm{CNN}_{\theta_c}(I)]$$
$$h_t = f(W_{hx} x_t + W_{hh} h_{t-1} + b_h + \mathbb{1}(t=1) \odot b_v)$$
$$y_t = \mathrm{softmax}(W_{oh} h_t + b_o)$$

This notebook builds that network (`nn.Captioner`), trains it on generated pictures, and asks
what changes when $b_v$ enters at every step, or never.
"""), ("code", r"""
import inspect

import matplotlib.pyplot as plt
import numpy as np

import nn
import tensorgrad as tg
from nn.captioning import END, PAD, Captioner, exact_match, train_captioner
from nn.tasks import CAPTION_VOCAB, caption_text, shape_captions

nn.set_num_threads(1)  # a small model's matrices run fastest on one BLAS thread
"""), ("markdown", r"""
## Pictures that come with their captions

Nothing is downloaded: `nn.tasks.shape_captions` draws 8×24 RGB pictures of one to three
shapes (squares, circles, triangles; red, green, blue, yellow) in three slots, jittered by a
pixel and noisy, and writes the one caption that fits, such as "two red squares left of a
blue circle". Every caption ends with END and is padded after it.
"""), ("code", r"""
images, captions = shape_captions(0, 6000)           # training
test_images, test_captions = shape_captions(1, 300)  # held out
print("images", images.shape, "captions (T, N)", captions.shape)
print("vocabulary:", " ".join(CAPTION_VOCAB))

def show(pictures, titles, columns=4):
    rows = -(-len(pictures) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.6 * rows))
    for ax, picture, title in zip(np.ravel(axes), pictures, titles):
        ax.imshow(np.clip(picture.transpose(1, 2, 0), 0, 1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    plt.show()

show(images[:8], [caption_text(captions[:, i]) for i in range(8)])
assert (captions[0] != PAD).all() and set(captions[-1]) <= {END, PAD}
"""), ("markdown", r"""
## The equations beside the code

| the notes | `nn.Captioner` |
|---|---|
| $\mathrm{CNN}_{\theta_c}(I)$ | `encoder`: a `PixelEncoder`, $\mathrm{ReLU}(W_e\,\mathrm{vec}(I) + b_e)$ |
| $W_{hi}$ | `W_hi` (no bias) |
| $x_t$ | `embedding(word)`, with $x_1$ = the START embedding |
| $W_{hx}$, $b_h$ | `W_hx.weight`, `W_hx.bias` |
| $W_{hh}$ | `W_hh` (no bias) |
| $f$ | tanh |
| $W_{oh}$, $b_o$ | `W_oh.weight`, `W_oh.bias` |

The notes' CNN is pre-trained on ImageNet, which this project cannot download. All the
equations need from it is a feature vector of the image, and on these pictures, where a
shape can only be in one of three slots, one layer of pixel detectors (an MLP over the
pixels) learns such features from the captions alone. A convolution would share its detectors
across positions, which matters when objects can be anywhere; here they cannot.
"""), ("code", r"""
print(inspect.getsource(Captioner.image_vector))
print(inspect.getsource(Captioner.step))
"""), ("markdown", r"""
$\mathbb{1}(t=1)$ is literal: the image reaches $h_2, h_3, \ldots$ only through $h_1$. Holding
$h_1$ fixed, the loss at step 2 has no gradient with respect to $b_v$ at all:
"""), ("code", r"""
tg.manual_seed(0)
model = Captioner(images.shape[1:], hidden_size=128, feature_size=128)
b_v = tg.Variable(model.image_vector(images[:4]).data)
x = model.embedding(np.concatenate([np.full((1, 4), CAPTION_VOCAB.index("<start>")), captions[:1, :4]]))
h1 = model.step(x[0], tg.Variable(np.zeros((4, 128), np.float32)), b_v, t=1)
h2 = model.step(x[1], h1.detach(), b_v, t=2)
(g1,) = tg.grad(model.W_oh(h1).sum(), [b_v])
(g2,) = tg.grad(model.W_oh(h2).sum(), [b_v])
print("∂L₁/∂b_v nonzero:", g1 is not None and bool(np.abs(g1.data).sum() > 0), "  ∂L₂/∂b_v (h₁ fixed):", g2)
assert g2 is None
"""), ("markdown", r"""
## Training

Teacher forcing: the inputs are START and the caption's words, the targets the same words and
END, one step later; the loss is the mean cross-entropy per word (the padding after END does
not count). 600 Adam steps of 64 images.
"""), ("code", r"""
models = {"first": model}
losses = {"first": train_captioner(model, images, captions, steps=600)}
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(losses["first"])
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy per word (nats)")
ax.set_yscale("log")
plt.show()
assert np.mean(losses["first"][-20:]) < 0.3 * np.mean(losses["first"][:20])
"""), ("markdown", r"""
## Captions of pictures it has never seen

Greedy decoding feeds the most probable word back in until END (✗ marks a caption that is not
word for word right). Sampling draws each word from $y_t$ instead (at temperature 1), so one
picture can get several captions: below, for the first picture the greedy caption gets wrong,
at temperature 1 and at 2 (which flattens $y_t$).
"""), ("code", r"""
greedy = model.caption(test_images)
said = [caption_text(greedy[:, i]) for i in range(len(test_images))]
right = [caption_text(test_captions[:, i]) for i in range(len(test_images))]
show(test_images[:12], [("" if said[i] == right[i] else "✗ ") + said[i] for i in range(12)])
wrong = next(i for i in range(len(test_images)) if said[i] != right[i])
rng = np.random.default_rng(0)
print(f"picture {wrong}, greedy:", said[wrong])
for temperature in (1.0, 2.0):
    for _ in range(4):
        sampled = model.caption(test_images[wrong:wrong + 1], temperature=temperature, rng=rng)
        print(f"sampled at temperature {temperature}:", caption_text(sampled[:, 0]))
print("the truth:", right[wrong])

def accuracy(model, pictures, truth):
    predicted = model.caption(pictures)
    length = min(len(predicted), len(truth))
    words = truth[:length] != PAD
    return exact_match(predicted, truth), (predicted[:length] == truth[:length])[words].mean()

exact, per_word = accuracy(model, test_images, test_captions)
print(f"held out: {exact:.0%} of captions exactly right, {per_word:.0%} of words")
assert exact >= 0.5 and per_word >= 0.85
"""), ("markdown", r"""
## Feeding $b_v$ at every step, or not at all

Two variants of the same network: `image_at="every"` adds $b_v$ at every step
($\mathbb{1}(t=1)$ replaced by 1), `image_at="never"` drops it (the network is a language
model of captions, blind to the picture). Same data, same steps.
"""), ("code", r"""
for variant in ("every", "never"):
    tg.manual_seed(0)
    models[variant] = Captioner(images.shape[1:], hidden_size=128, feature_size=128, image_at=variant)
    losses[variant] = train_captioner(models[variant], images, captions, steps=600)
results = {name: (accuracy(m, images[:300], captions[:, :300]), accuracy(m, test_images, test_captions))
           for name, m in models.items()}
print(f"{'b_v added':>10}  {'train exact':>11}  {'held-out exact':>14}  {'held-out words':>14}")
for name, ((train_exact, _), (test_exact, test_words)) in results.items():
    print(f"{name:>10}  {train_exact:11.0%}  {test_exact:14.0%}  {test_words:14.0%}")
blind = models["never"].caption(test_images)
print("the blind model's captions:", {caption_text(blind[:, i]) for i in range(len(test_images))})

fig, ax = plt.subplots(figsize=(8, 3.4))
by_position = {}
for name, m in models.items():
    predicted = m.caption(test_images)
    predicted = np.pad(predicted, ((0, max(8 - len(predicted), 0)), (0, 0)))  # PAD after every END
    by_position[name] = np.array([(predicted[t] == test_captions[t])[test_captions[t] != PAD].mean()
                                  for t in range(8)])
    ax.plot(np.arange(1, len(by_position[name]) + 1), by_position[name], "o-", label=f"b_v at {name}")
ax.set_xlabel("word position t")
ax.set_ylabel("held-out words right")
ax.legend()
plt.show()
assert results["never"][1][0] < 0.05
assert len({caption_text(blind[:, i]) for i in range(len(test_images))}) <= 3
assert results["every"][1][0] > results["first"][1][0]
assert by_position["first"][-1] < by_position["first"][0] - 0.2 and by_position["every"].min() > 0.85
gap = {name: train[0] - test[0] for name, (train, test) in results.items()}
assert max(gap.values()) < 0.1
"""), ("markdown", r"""
**Never.** The blind network learns the language of the captions, where "left of" goes and
which words follow which, and nothing else: it says the same caption of every picture, and
the words that need the picture are guesses.

**At every step.** Here it does *better* than the notes' $\mathbb{1}(t=1)$, and the curve
shows why. Fed once, the picture has to be carried in $h$ through up to eight tanh steps, and
the accuracy sags along the caption and collapses at its last word, the shape of the
right-hand group, the word furthest from $t = 1$. Fed at every step, each word sees the
picture directly and the curve stays flat. What feeding once costs on these pictures is
memory: the plain RNN's fading memory of notebooks 3 and 7.

Why, then, do the notes feed it once? Karpathy & Fei-Fei report that feeding $b_v$ at every
step gave *worse* results on real photographs, because the network could then exploit noise
in the image and overfit more easily. Nothing of that shows here: the pictures are simple and
the 6000 training images plenty; for every variant the training and held-out columns are
less than ten points apart (asserted above), so there is little overfitting for the
every-step variant to suffer from. The lesson is the
trade itself: one entry point makes the hidden state the only channel from the image to the
words, which regularises and costs memory; an entry at every step gives each word the
picture, and with it the picture's noise.
""")]


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["11", "12"]
    for number, cells, path in (("11", CONVOLUTION, "notebooks/11_convolution_wavenet.ipynb"),
                                ("12", CAPTIONING, "notebooks/12_image_captioning.ipynb")):
        if number in chosen:
            build([(md if kind == "markdown" else code)(text.strip("\n")) for kind, text in cells], path)
