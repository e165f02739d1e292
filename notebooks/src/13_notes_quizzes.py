# %% [markdown]
# # 13. The quizzes and worked examples of the course notes
#
# The course notes (`shared/seeds/*.txt`, text extracted from slides) pose quizzes and draw
# small examples that the other notebooks do not run one for one. This notebook runs each of
# them, with the notes' own numbers, and checks every answer in code:
#
# | notes | what | section below |
# |---|---|---|
# | `000_1a3b4d4fe86b955d` | feed-forward quiz: $m + n + mn$ weights | Counting weights: the feed-forward quiz |
# | `004_54bd929fd6f3ab2a` | RNN quiz: 161 weights, find $n$; dimensions of $U, W, V$ | Counting weights: the RNN quiz |
# | `000_…` | backpropagation review: Equation A, $W_{new} = W + \alpha(-\partial E/\partial W)$, mini-batches | Backpropagation review: Equation A and the weight update |
# | `000_…` | quizzes #1–#3: a second recurrent layer $z_t$, $\partial E_2/\partial V_1$, $\partial E_2/\partial U$ | Quizzes #1–#3: a second recurrent layer |
# | `001_b820a0660ab69315`, `004_…` | class exercise $\partial h^{(t)}/\partial x^{(t-k)} \le \lvert w_{hh}\rvert^k w_{hx}$, and $\gamma$ | The class exercise: one neuron, k steps back |
# | `000_…`, `001_…`, `003_94ba5229dc8f5834` | sequence batching of [1 … 12]; TBPTT of a 1,000-long sequence | Sequence batching: [1 … 12] in batches of 2 × 3 |
# | `000_…`, `001_…` | output and state of a 2-layer LSTM; the multilayer RNN | Output and state of a 2-layer LSTM |
# | `002_e0afc7bda6e6e069` | bag of words: two sentences, one vector; one-hot words | Bag of words: two sentences, one vector |
# | `002_…` | 140,000 words give 19.6 billion bigrams | Bigrams: 140,000 words, 19.6 billion counts |
# | `001_…` | word embeddings: the embedding layer is a lookup | Word embeddings: a lookup table |
# | `002_…` | "Teddy bears are on sale" / "Teddy Roosevelt was a president" | Teddy: a word only the future can label |
# | `003_…` | the notes' GRU (reset before the matmul) and the peephole LSTM | The notes' GRU and the peephole LSTM |
# | `003_…` | layer normalisation and dropout | Layer normalisation and dropout |
#
# Everything runs in float64 where gradients are compared, so "equal" means to $10^{-12}$.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from tensorgrad import viz

nn.set_num_threads(1)  # a small model's matrices run fastest on one BLAS thread
np.set_printoptions(precision=4, suppress=True)


def count(*modules):
    """The number of weights (parameter entries) of some modules."""
    return sum(p.size for m in modules for p in m.parameters())

# %% [markdown]
# ## Counting weights: the feed-forward quiz
#
# *A feed-forward network has a single input $x$, two hidden layers of $M$ and $N$ neurons
# and a single output. How many weights?* (notes `000_…`). Without biases the three weight
# matrices are $1 \times M$, $M \times N$ and $N \times 1$: $m + mn + n$. With a bias per
# neuron there are $M + N + 1$ more. The activations have no weights, so three `nn.Linear`
# layers count it:

# %%
for M, N in [(3, 4), (10, 7), (1, 1), (32, 64)]:
    layers = [nn.Linear(1, M, bias=False), nn.Linear(M, N, bias=False), nn.Linear(N, 1, bias=False)]
    with_bias = [nn.Linear(1, M), nn.Linear(M, N), nn.Linear(N, 1)]
    print(f"M = {M:2d}, N = {N:2d}: {count(*layers):5d} weights = m + n + mn = {M + N + M * N:5d};"
          f" with biases {count(*with_bias)}")
    assert count(*layers) == M + N + M * N
    assert count(*with_bias) == M + N + M * N + M + N + 1

# %% [markdown]
# ## Counting weights: the RNN quiz
#
# *An RNN takes words each as a vector of length $n$, has one hidden layer with $n/2$
# neurons and one output layer with 2 neurons. The total number of weights is 161: find
# $n$* (notes `004_…`). With the notes' dimensions, $x_i \in \mathbb{R}^n$, $s_i \in
# \mathbb{R}^d$, $y_i \in \mathbb{R}^k$, the weights are $U \in \mathbb{R}^{n \times d}$ (input),
# $W \in \mathbb{R}^{d \times d}$ (recurrent) and $V \in \mathbb{R}^{d \times k}$ (output):
#
# $$n \cdot \frac n2 + \frac n2 \cdot \frac n2 + \frac n2 \cdot 2 = \frac{3n^2}{4} + n = 161
# \quad\Rightarrow\quad n = \frac{-1 + \sqrt{1 + 3 \cdot 161}}{3/2} = \frac{-1 + 22}{1.5} = 14 .$$
#
# Built with tensorgrad: `nn.RNN(n, n // 2, bias=False)` holds $U^\top$ as `weight_ih_l0`
# (PyTorch's layout, $x U$ written as $x W_{ih}^\top$) and $W^\top$ as `weight_hh_l0`, and
# `nn.Linear(n // 2, 2, bias=False)` holds $V^\top$. Searching over even $n$ for the network
# with 161 weights finds the one the formula gives.

# %%
def quiz_network(n, bias=False):
    return nn.RNN(n, n // 2, bias=bias), nn.Linear(n // 2, 2, bias=bias)


closed_form = (-1 + np.sqrt(1 + 3 * 161)) / 1.5
found = [n for n in range(2, 100, 2) if count(*quiz_network(n)) == 161]
print(f"quadratic formula: n = {closed_form}; networks with 161 weights: n = {found}")
assert closed_form == 14 and found == [14]

rnn, out = quiz_network(14)
for name, p in [*rnn.named_parameters(), *out.named_parameters()]:
    print(f"{name:14s} {p.shape}")
assert rnn.weight_ih_l0.shape == (7, 14) and rnn.weight_hh_l0.shape == (7, 7) and out.weight.shape == (2, 7)

# %% [markdown]
# Biases change the count. The notes' equations $s_i = \sigma(U x_i + W s_{i-1} + b)$,
# $y_i = O(V s_i + c)$ have one bias vector per layer: $n/2 + 2$ more, 170 for $n = 14$.
# PyTorch's recurrent layers (and so `nn.RNN`) keep **two** bias vectors, $b_{ih}$ and
# $b_{hh}$, that only ever appear as their sum: $n/2$ more again, 177. The quiz's equation
# with biases becomes $\frac{3n^2}{4} + 2n + 2$ (PyTorch) and no even $n$ gives 161 any more.
# The module computes exactly the notes' step with $b = b_{ih} + b_{hh}$:

# %%
rnn_b, out_b = quiz_network(14, bias=True)
print("weights: no biases", count(rnn, out), "| one bias per layer", count(rnn, out) + 7 + 2,
      "| PyTorch's two recurrent biases", count(rnn_b, out_b))
assert count(rnn_b, out_b) == 3 * 14**2 // 4 + 2 * 14 + 2 == 177
assert not [n for n in range(2, 100, 2) if count(*quiz_network(n, bias=True)) == 161]

rnn_b.double(), out_b.double()
xs = np.random.default_rng(0).normal(size=(5, 1, 14))
U, W = rnn_b.weight_ih_l0.data.T, rnn_b.weight_hh_l0.data.T
b = rnn_b.bias_ih_l0.data + rnn_b.bias_hh_l0.data
s, by_hand = np.zeros(7), []
for x in xs[:, 0]:
    s = np.tanh(x @ U + s @ W + b)
    by_hand.append(s)
states, _ = rnn_b(xs)
print("largest difference, nn.RNN vs the notes' equation:", np.abs(states.data[:, 0] - by_hand).max())
assert np.allclose(states.data[:, 0], by_hand, rtol=0, atol=1e-14)

# %% [markdown]
# The notes' loss of a sequence (`004_…`) is the sum of the steps' losses,
# $\mathcal L(\theta) = \sum_{t=1}^T \mathcal L_t(\theta)$ with $\mathcal L_t(\theta) = -\log y_{tc}$,
# $y_{tc}$ the predicted probability of the true class $c$ at step $t$. With the output layer
# $y_t = \operatorname{softmax}(V s_t + c)$ on the states above, that is the cross-entropy
# summed over the steps:

# %%
logits = out_b(states)[:, 0]                               # (T, 2)
true_class = np.array([0, 1, 1, 0, 1])
y = np.exp(logits.data) / np.exp(logits.data).sum(axis=1, keepdims=True)
by_steps = sum(-np.log(y[t, c]) for t, c in enumerate(true_class))
summed = nn.softmax_cross_entropy(logits, true_class, reduction="sum").item()
print(f"Σ_t -log y_tc = {by_steps:.15f}; softmax_cross_entropy(reduction='sum') = {summed:.15f}")
assert abs(by_steps - summed) < 1e-14

# %% [markdown]
# ## Backpropagation review: Equation A and the weight update
#
# The notes (`000_…`) review backpropagation on a small network: an input layer, a hidden
# layer $h_1, h_2$, a second one $h_3, h_4$ and an output $y$. The weight $W_1$ (here the
# weight from $x_1$ to $h_1$) reaches $y$ along two paths, through $h_3$ and through $h_4$:
#
# $$\frac{\partial y}{\partial W_1} = \frac{\partial y}{\partial h_3}\frac{\partial h_3}{\partial h_1}
# \frac{\partial h_1}{\partial W_1} + \frac{\partial y}{\partial h_4}\frac{\partial h_4}{\partial h_1}
# \frac{\partial h_1}{\partial W_1} \qquad \text{(Equation A)}.$$
#
# With the loss $E = \tfrac12 (d - y)^2$, one step of gradient descent is
# $W_{new} = W_{previous} + \alpha\,(-\partial E/\partial W) = W_{previous} + \alpha (d - y)
# \,\partial y/\partial W$. And with a mini-batch of $m$ samples the step uses the average
# $\delta = \frac1m \sum_k \delta_k$ of the samples' gradients.

# %%
rng = np.random.default_rng(1)
x = rng.normal(size=2)
W1, W2, w3 = rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), rng.normal(size=2)
W1_v = tg.Variable(W1.copy())
h12 = F.sigmoid(tg.Variable(x, requires_grad=False) @ W1_v)   # h1, h2
h34 = F.sigmoid(h12 @ W2)                                      # h3, h4
y = h34 @ w3
y.backward()

h1, h2 = h12.data
h3, h4 = h34.data
dy_dh3, dy_dh4 = w3
dh3_dh1, dh4_dh1 = h3 * (1 - h3) * W2[0, 0], h4 * (1 - h4) * W2[0, 1]
dh1_dW1 = h1 * (1 - h1) * x[0]                                 # W1[0, 0] connects x1 to h1
equation_a = dy_dh3 * dh3_dh1 * dh1_dW1 + dy_dh4 * dh4_dh1 * dh1_dW1
print(f"Equation A: {equation_a:.15f}\nautograd:   {W1_v.grad.data[0, 0]:.15f}")
assert abs(equation_a - W1_v.grad.data[0, 0]) < 1e-15

d, alpha = 0.3, 0.5
layer = nn.Linear(2, 1, bias=False).double()
before = layer.weight.data.copy()
prediction = layer(x[None])
loss = 0.5 * ((d - prediction) ** 2).sum()
layer.zero_grad()
loss.backward()
nn.optim.SGD(layer.parameters(), lr=alpha).step()
rule = before + alpha * (d - prediction.data[0, 0]) * x[None]   # ∂y/∂W = x for y = x·W
assert np.allclose(layer.weight.data, rule, rtol=0, atol=1e-15)

batch = rng.normal(size=(8, 2))
targets = rng.normal(size=(8, 1))
layer.zero_grad()
nn.mse_loss(layer(batch), targets).backward()
per_sample = []
for xk, dk in zip(batch, targets, strict=True):
    (g,) = tg.grad(nn.mse_loss(layer(xk[None]), dk[None]), [layer.weight])
    per_sample.append(g.data)
print("mini-batch gradient", layer.weight.grad.data, "= mean of the 8 samples'", np.mean(per_sample, axis=0))
assert np.allclose(layer.weight.grad.data, np.mean(per_sample, axis=0), rtol=0, atol=1e-14)

# %% [markdown]
# ## Quizzes #1–#3: a second recurrent layer
#
# The notes (`000_…`) stack a second recurrent layer $z_t$ on the Elman state $s_t$:
#
# $$s_t = \tanh(x_t U + s_{t-1} W_1), \qquad
# \bar z_t = \bar s_t V_1 + \bar z_{t-1} W_2 \;\;\text{(quiz \#1)}, \qquad
# y_t = z_t V_2, \qquad E_t = \tfrac12 \lVert d_t - y_t \rVert^2 .$$
#
# Quiz #2 asks for $\partial E_2/\partial V_1$. $V_1$ is used at steps 1 and 2; the path
# from step 1 runs through $z_1 \to z_2$:
#
# $$\frac{\partial E_2}{\partial V_1} = \frac{\partial E_2}{\partial y_2}\frac{\partial y_2}{\partial z_2}\frac{\partial z_2}{\partial V_1}
# + \frac{\partial E_2}{\partial y_2}\frac{\partial y_2}{\partial z_2}\frac{\partial z_2}{\partial z_1}\frac{\partial z_1}{\partial V_1},
# \qquad \text{in general} \quad \frac{\partial E_t}{\partial V_1} = \sum_{i=1}^{t}
# \frac{\partial E_t}{\partial y_t}\frac{\partial y_t}{\partial z_i}\frac{\partial z_i}{\partial V_1}.$$
#
# Quiz #3 asks for $\partial E_2/\partial U$: three paths, since $s_1$ reaches $z_2$ both
# through $s_2$ and through $z_1$:
#
# $$\frac{\partial E_2}{\partial U} = \frac{\partial E_2}{\partial y_2}\frac{\partial y_2}{\partial z_2}
# \Big(\frac{\partial z_2}{\partial s_2}\frac{\partial s_2}{\partial U}
# + \frac{\partial z_2}{\partial s_2}\frac{\partial s_2}{\partial s_1}\frac{\partial s_1}{\partial U}
# + \frac{\partial z_2}{\partial z_1}\frac{\partial z_1}{\partial s_1}\frac{\partial s_1}{\partial U}\Big).$$
#
# Each factor is an explicit Jacobian (row vectors, so $\partial (a M)/\partial a = M^\top$).
# $\partial s_t/\partial U$ and $\partial z_t/\partial V_1$ are three-index arrays
# $J[j, a, b] = \partial s_{t,j}/\partial U_{ab}$ of the *direct* dependence:
# $(1 - s_{t,j}^2)\, x_{t,a}\, \delta_{jb}$ and $s_{t,a}\, \delta_{jb}$.

# %%
rng = np.random.default_rng(2)
n_x, n_s, n_z, n_y, T = 3, 4, 3, 2, 3
U, W1, V1, W2, V2 = (rng.normal(0, 0.6, shape) for shape in
                     [(n_x, n_s), (n_s, n_s), (n_s, n_z), (n_z, n_z), (n_z, n_y)])
xs, ds = rng.normal(size=(T, n_x)), rng.normal(size=(T, n_y))
params = {name: tg.Variable(value, name=name) for name, value in
          dict(U=U, W1=W1, V1=V1, W2=W2, V2=V2).items()}


def run(p):
    """The states s_t, z_t, outputs y_t and losses E_t for t = 1..T (s_0 = z_0 = 0)."""
    s, z = np.zeros(n_s), np.zeros(n_z)
    out = {"s": [], "z": [], "y": [], "E": []}
    for t, (x, d) in enumerate(zip(xs, ds, strict=True), start=1):
        with tg.scope(f"t={t}"):
            s = F.tanh(x @ p["U"] + s @ p["W1"])
            z = s @ p["V1"] + z @ p["W2"]
            y = z @ p["V2"]
            E = 0.5 * ((d - y) ** 2).sum()
        for key, value in zip("szyE", (s, z, y, E), strict=True):
            value.name = f"{key}{t}"
            out[key].append(value)
    return out


recorded = run(params)
E2 = recorded["E"][1]
grads = dict(zip(params, tg.grad(E2, list(params.values())), strict=True))
s = [np.zeros(n_s)] + [v.data for v in recorded["s"]]   # s[t], t = 0..T
z = [np.zeros(n_z)] + [v.data for v in recorded["z"]]

dE2_dy2 = -(ds[1] - recorded["y"][1].data)            # ∂E2/∂y2
dy_dz = V2.T                                           # ∂y_t/∂z_t
dz_dz = W2.T                                           # ∂z_t/∂z_(t-1)
dz_ds = V1.T                                           # ∂z_t/∂s_t


def ds_ds(t):                                          # ∂s_t/∂s_(t-1)
    return np.diag(1 - s[t] ** 2) @ W1.T


def ds_dU(t):                                          # direct ∂s_t/∂U: [j, a, b]
    J = np.zeros((n_s, n_x, n_s))
    for j in range(n_s):
        J[j, :, j] = (1 - s[t][j] ** 2) * xs[t - 1]
    return J


def dz_dV1(t):                                         # direct ∂z_t/∂V1: [j, a, b]
    J = np.zeros((n_z, n_s, n_z))
    for j in range(n_z):
        J[j, :, j] = s[t]
    return J


top = dE2_dy2 @ dy_dz                                  # ∂E2/∂y2 · ∂y2/∂z2, a row vector
quiz2 = (np.einsum("j,jab->ab", top, dz_dV1(2))
         + np.einsum("j,jk,kab->ab", top, dz_dz, dz_dV1(1)))
quiz3 = (np.einsum("j,jk,kab->ab", top, dz_ds, ds_dU(2))
         + np.einsum("j,jk,kl,lab->ab", top, dz_ds, ds_ds(2), ds_dU(1))
         + np.einsum("j,jk,kl,lab->ab", top, dz_dz, dz_ds, ds_dU(1)))
for name, by_paths in [("V1 (quiz #2)", quiz2), ("U (quiz #3)", quiz3)]:
    key = name.split()[0]
    error = np.abs(by_paths - grads[key].data).max()
    print(f"∂E2/∂{name}: sum over paths vs autograd, largest difference {error:.1e}")
    assert error < 1e-12

# %% [markdown]
# The notes' figure of this network is missing from the text; here is the graph autograd
# recorded for $E_2$, one box per step. $U$, $W_1$, $V_1$, $W_2$ and $V_2$ are shared by the
# boxes; from $s_1$ two arrows leave box 1, into $s_2$ and into $z_1$: the second and third
# paths of quiz #3.

# %%
viz.make_dot(E2, params=list(params.items()))

# %% [markdown]
# The general rule of quiz #2 for $t = 3$: $\partial y_3/\partial z_i$ is
# $V_2^\top (W_2^\top)^{3-i}$, one term per step at which $V_1$ was used. And the
# single-layer rule of the notes, $\frac{\partial E_3}{\partial W_x} = \sum_{i=1}^{3}
# \frac{\partial E_3}{\partial \bar y_3}\frac{\partial \bar y_3}{\partial \bar s_3}
# \frac{\partial \bar s_3}{\partial \bar s_i}\frac{\partial \bar s_i}{\partial W_x}$, is the
# same computation one layer down ($U$ is $W_x$, $W_1$ is $W_s$, with $E_3$ read off $s_3$
# through the $z$ layer): its three terms against autograd.

# %%
E3 = recorded["E"][2]
(g_V1, g_U) = tg.grad(E3, [params["V1"], params["U"]])
top3 = -(ds[2] - recorded["y"][2].data) @ dy_dz
general = sum(np.einsum("j,jk,kab->ab", top3, np.linalg.matrix_power(dz_dz, 3 - i), dz_dV1(i))
              for i in range(1, 4))
assert np.abs(general - g_V1.data).max() < 1e-12


dE3_ds = {}  # ∂E3/∂s_i along every path: through z_i (and on along z), and through s_(i+1)
for i in (3, 2, 1):
    dE3_ds[i] = top3 @ np.linalg.matrix_power(dz_dz, 3 - i) @ dz_ds
    if i < 3:
        dE3_ds[i] = dE3_ds[i] + dE3_ds[i + 1] @ ds_ds(i + 1)
bptt = sum(np.einsum("j,jab->ab", dE3_ds[i], ds_dU(i)) for i in range(1, 4))
print("∂E3/∂V1 (general rule) and ∂E3/∂U (sum over steps): largest differences",
      np.abs(general - g_V1.data).max(), np.abs(bptt - g_U.data).max())
assert np.abs(bptt - g_U.data).max() < 1e-12

# %% [markdown]
# ## The class exercise: one neuron, k steps back
#
# *Assume a single-neuron, fully-connected recurrent layer, $h^{(t)} = \varphi(w_{hx}
# x^{(t)} + w_{hh} h^{(t-1)} + b)$. Prove $\frac{\partial h^{(t)}}{\partial x^{(t-k)}} \le
# \lvert w_{hh}\rvert^k \cdot w_{hx}$ for $\varphi$ sigmoid, tanh or ReLU* (notes `001_…`).
# With $a^{(t)}$ the pre-activation, the chain rule along the one path gives
#
# $$\frac{\partial h^{(t)}}{\partial x^{(t-k)}} = \Big(\prod_{i=t-k+1}^{t} \varphi'(a^{(i)})\,w_{hh}\Big)
# \,\varphi'(a^{(t-k)})\, w_{hx}, \qquad\text{so}\qquad
# \Big\lvert\frac{\partial h^{(t)}}{\partial x^{(t-k)}}\Big\rvert \le \gamma^{k+1}\,\lvert w_{hh}\rvert^k\,\lvert w_{hx}\rvert$$
#
# with $\gamma = \max \lvert\varphi'\rvert$: 1 for tanh and ReLU, $\tfrac14$ for the sigmoid.
# The $k$ recurrent factors are the one-neuron case of the notes' matrix bound (`004_…`,
# checked in notebook 3), $\lvert\partial h^{(t)}/\partial h^{(t-k)}\rvert \le (\gamma\lambda)^k$
# with $\lambda = \lvert w_{hh} \rvert$: that is where $\gamma^k$ enters; the input step adds one
# more $\gamma \lvert w_{hx} \rvert$. For $\gamma = 1$ this is the exercise's bound, once $w_{hx}$
# is read as $\lvert w_{hx} \rvert$; for the sigmoid it is tighter by $\gamma^{k+1} = 4^{-(k+1)}$.
# Checked over random weights, inputs, lengths and $k$, with the derivative from autograd:

# %%
ACTIVATIONS = {"tanh": (F.tanh, 1.0), "ReLU": (F.relu, 1.0), "sigmoid": (F.sigmoid, 0.25)}
rng = np.random.default_rng(3)
worst, trials = {name: 0.0 for name in ACTIVATIONS}, 0
pairs = {name: [] for name in ACTIVATIONS}   # (bound, |derivative|) for the picture
for _ in range(300):
    t = int(rng.integers(1, 12))
    w_hx, w_hh, bias = (float(w) for w in rng.normal(0, 1.5, 3))
    xs = tg.Variable(rng.normal(size=t))
    for name, (phi, gamma) in ACTIVATIONS.items():
        h = tg.Variable(np.float64(rng.normal()), requires_grad=False)
        for i in range(t):
            h = phi(w_hx * xs[i] + w_hh * h + bias)
        (dh_dx,) = tg.grad(h, [xs])
        for k in range(t):
            derivative = dh_dx.data[t - 1 - k]
            exercise = abs(w_hh) ** k * abs(w_hx)
            tight = gamma ** (k + 1) * exercise
            assert abs(derivative) <= tight * (1 + 1e-12) + 1e-300 and tight <= exercise
            if exercise > 0:
                worst[name] = max(worst[name], abs(derivative) / tight)
                pairs[name].append((tight, abs(derivative)))
            trials += 1
print(f"{trials} (activation, weights, k) cases; the largest |∂h/∂x| / (γ^(k+1) |w_hh|^k |w_hx|):", worst)
assert worst["ReLU"] > 1 - 1e-12   # reached exactly: a ReLU in its linear part passes everything on

# %% [markdown]
# ReLU reaches the bound (in its linear region the derivative is exactly
# $w_{hh}^k w_{hx}$), so it cannot be improved for $\gamma = 1$. As written in the notes,
# without $\lvert \cdot \rvert$ around $w_{hx}$, the bound is false for a negative $w_{hx}$:

# %%
w_hx, w_hh = -1.0, -0.9
xs = tg.Variable(np.zeros(3))
h = tg.Variable(np.float64(0.0), requires_grad=False)
for i in range(3):
    h = F.relu(w_hx * xs[i] + w_hh * h + 0.5)   # b > 0 keeps the ReLU in its linear part
(dh_dx,) = tg.grad(h, [xs])
k = 1
print(f"k = {k}: ∂h/∂x = {dh_dx.data[2 - k]:.3f} > |w_hh|^k w_hx = {abs(w_hh) ** k * w_hx:.3f}")
assert dh_dx.data[2 - k] > abs(w_hh) ** k * w_hx

# %% [markdown]
# Left, every case above: the measured $\lvert\partial h^{(t)}/\partial x^{(t-k)}\rvert$
# against its bound, all on or below the diagonal, ReLU's on it. Right, how fast the bound
# falls with $k$ for $\lvert w_{hh} \rvert = 0.9$, $w_{hx} = 1$: the sigmoid's $\gamma =
# \frac14$ makes it fall four times faster per step.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, points in pairs.items():
    bound, measured = np.array(points).T
    keep = measured > 0
    left.loglog(bound[keep], measured[keep], ".", ms=3, alpha=0.5, label=name)
span = [min(min(b for b, _ in p) for p in pairs.values()), max(max(b for b, _ in p) for p in pairs.values())]
left.loglog(span, span, "k--", lw=1, label="measured = bound")
left.set_xlabel(r"bound $\gamma^{k+1} |w_{hh}|^k |w_{hx}|$")
left.set_ylabel(r"measured $|\partial h^{(t)}/\partial x^{(t-k)}|$")
left.legend(fontsize=8)
k = np.arange(0, 30)
right.semilogy(k, 0.9 ** k, label=r"tanh, ReLU: $|w_{hh}|^k |w_{hx}|$")
right.semilogy(k, 0.25 ** (k + 1) * 0.9 ** k, label=r"sigmoid: $\gamma^{k+1} |w_{hh}|^k |w_{hx}|$")
right.set_xlabel("k (steps back)")
right.set_ylabel("bound")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Sequence batching: [1 … 12] in batches of 2 × 3
#
# The notes (`000_…`): instead of processing the sequence [1 2 3 4 5 6 7 8 9 10 11 12]
# with batch size 1, split it into 2 rows and process both at once; with a sequence length
# of 3 the first batch is the two mini-sequences [1 2 3] and [7 8 9]:
#
# ```
# [1 2 3]  4 5 6]
# [7 8 9] 10 11 12]
# ```
#
# `nn.data.StreamBatcher` does this split. Its rows are the columns of `.data`; a window of
# a character model takes its targets one step later, so the notes' mini-sequences are the
# windows of `.data`:

# %%
batches = nn.data.StreamBatcher(np.arange(1, 13), batch_size=2, seq_len=3)
windows = [batches.data[k:k + 3].T for k in range(0, 6, 3)]
for k, window in enumerate(windows, start=1):
    print(f"batch {k}:\n{window}")
assert (windows[0] == [[1, 2, 3], [7, 8, 9]]).all() and (windows[1] == [[4, 5, 6], [10, 11, 12]]).all()
inputs, targets = batches[0]
print("as inputs and next-step targets of a character model: inputs", inputs.T.tolist(),
      "targets", targets.T.tolist())
assert (inputs.T == [[1, 2, 3], [7, 8, 9]]).all() and (targets.T == [[2, 3, 4], [8, 9, 10]]).all()

# %% [markdown]
# *Retain the hidden state of one batch and use it at the start of the next: sequence
# information is transferred across batches.* With the state carried, running the two
# batches one after the other gives exactly the states of running each whole row at once;
# starting the second batch from zero does not.

# %%
tg.manual_seed(0)
rnn = nn.RNN(1, 4).double()
features = (batches.data[:6, :, None] / 12.0)            # (T = 6, B = 2, 1)
whole, _ = rnn(features)
first, state = rnn(windows[0].T[..., None] / 12.0)
second, _ = rnn(windows[1].T[..., None] / 12.0, nn.data.detach_state(state))
fresh, _ = rnn(windows[1].T[..., None] / 12.0)
carried_error = np.abs(second.data - whole.data[3:]).max()
fresh_error = np.abs(fresh.data - whole.data[3:]).max()
print(f"second batch, state carried: differs from the whole rows by {carried_error:.1e}; "
      f"state reset: by {fresh_error:.3f}")
assert carried_error < 1e-15 and fresh_error > 1e-3

# %% [markdown]
# Truncated BPTT (notes `001_…`) splits a 1,000-long sequence into 50 sequences of length 20;
# `StreamBatcher` with one row and `seq_len=20` does exactly that (a 1,001st token gives the
# last window its target). The forward pass is not truncated, only the backward pass
# (`003_…`): the state is carried, detached, as above. `nn.TBPTT(k1, k2)` separates how
# often to update ($k_1$) from how far back to propagate ($k_2$).

# %%
long = nn.data.StreamBatcher(np.arange(1001), batch_size=1, seq_len=20)
lengths = {len(inputs) for inputs, _ in long}
print(f"{len(long)} windows of length {lengths}")
assert len(long) == 50 and lengths == {20}

# %% [markdown]
# ## Output and state of a 2-layer LSTM
#
# The notes (`000_…`, last lines) warn learners to tell apart a recurrent network's
# **output** and its **state**. For a stacked LSTM the state at step $t$ is every layer's
# pair, $S_t = [(c_t^{(1)}, h_t^{(1)}), (c_t^{(2)}, h_t^{(2)}), \dots]$, while the output is
# $y_t = h_t^{(l)}$, the top layer's hidden state only: the cell values $c$ (and the lower
# layers) never reach the output layer. `nn.LSTM` returns `output` (every $y_t$) and
# `(h_n, c_n)` (the state after the last step); `return_all_states=True` adds the state of
# every layer at every step.

# %%
tg.manual_seed(0)
lstm = nn.LSTM(3, 4, num_layers=2).double()
x = np.random.default_rng(4).normal(size=(5, 1, 3))
output, (h_n, c_n), every = lstm(x, return_all_states=True)
print("output", output.shape, "= (T, B, H): y_t for every t, top layer only")
print("h_n, c_n", h_n.shape, c_n.shape, "= (layers, B, H): S_T, every layer")
print("all states: h", every.h.shape, "c", every.c.shape, "= (layers, T, B, H)")
t = 2
S_t = [(every.c.data[layer, t], every.h.data[layer, t]) for layer in range(2)]
assert np.allclose(output.data[t], S_t[1][1], rtol=0, atol=0)                  # y_t = h_t of layer 2
assert np.allclose(output.data, every.h.data[1], rtol=0, atol=0)
assert np.allclose(h_n.data, every.h.data[:, -1]) and np.allclose(c_n.data, every.c.data[:, -1])
assert not np.allclose(output.data[t], S_t[0][1])                               # not layer 1's h

# %% [markdown]
# The multilayer RNN of the notes (`001_…`): the second layer reads the first layer's
# hidden units at the same step, $h_1^{(t)}$, and its own previous state. A one-layer LSTM
# with the second layer's weights, fed the first layer's hidden states, gives the output:

# %%
upper = nn.LSTM(4, 4).double()
upper.load_state_dict({name.replace("_l1", "_l0"): value for name, value in lstm.state_dict().items()
                       if name.endswith("_l1")})
upper_output, _ = upper(every.h.data[0])
assert np.allclose(upper_output.data, output.data, rtol=0, atol=1e-14)

# %% [markdown]
# ## Bag of words: two sentences, one vector
#
# The notes (`002_…`) count words in a fixed dictionary. Their two sentences
# "The movie was not long but interesting." and "The movie was long but not interesting."
# say opposite things, yet have the same vector: a bag of words keeps the frequencies and
# loses the order.

# %%
DICTIONARY = ["the", "movie", "song", "was", "is", "not", "long", "but", "interesting"]


def words(sentence):
    return sentence.lower().replace(".", "").split()


def bag_of_words(sentence, dictionary):
    return {w: words(sentence).count(w) for w in dictionary}


good, bad = "The movie was not long but interesting.", "The movie was long but not interesting."
print(bag_of_words(good, DICTIONARY))
assert bag_of_words(good, DICTIONARY) == bag_of_words(bad, DICTIONARY)
assert bag_of_words(good, DICTIONARY) == {"the": 1, "movie": 1, "song": 0, "was": 1, "is": 0, "not": 1,
                                          "long": 1, "but": 1, "interesting": 1}
sleep = "I like to sleep and I like to eat"
print(bag_of_words(sleep, dict.fromkeys(words(sleep))))
assert bag_of_words(sleep, dict.fromkeys(words(sleep))) == {"i": 2, "like": 2, "to": 2, "sleep": 1,
                                                            "and": 1, "eat": 1}

# %% [markdown]
# An RNN reads the words as one-hot vectors $x^{\langle t \rangle}$, in order. In the
# sentence's own vocabulary (the, movie, was, not, long, but, interesting) "was" is
# $[0\,0\,1\,0\,0\,0\,0]^\top$, as the notes draw it. Any function of the bag-of-words vector
# gives the two sentences the same answer; an LSTM reading the one-hot words in order tells
# them apart, here trained for a few steps to call the first positive and the second
# negative.

# %%
vocabulary = list(dict.fromkeys(words(good)))
one_hot = np.eye(len(vocabulary))
print("was ↦", one_hot[vocabulary.index("was")])
assert (one_hot[vocabulary.index("was")] == [0, 0, 1, 0, 0, 0, 0]).all()

sentences = np.stack([one_hot[[vocabulary.index(w) for w in words(s)]] for s in (good, bad)], axis=1)
labels = np.array([1, 0])                                           # positive, negative
tg.manual_seed(0)
reader, judge = nn.LSTM(len(vocabulary), 8).double(), nn.Linear(8, 2).double()
optimizer = nn.optim.Adam([*reader.parameters(), *judge.parameters()], lr=0.05)
for _ in range(40):
    _, (h_n, _) = reader(sentences)
    loss = nn.softmax_cross_entropy(judge(h_n[0]), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
with tg.no_grad():
    p_positive = F.softmax(judge(reader(sentences)[1][0][0]), axis=-1).data[:, 1]
print(f"P(positive): {p_positive[0]:.3f} for '{good}', {p_positive[1]:.3f} for '{bad}'")
assert p_positive[0] > 0.9 and p_positive[1] < 0.1

# %% [markdown]
# ## Bigrams: 140,000 words, 19.6 billion counts
#
# n-grams keep some order, but *the vector size grows exponentially*: counting pairs of
# words instead of words squares it. The PWN spelling dictionary has about 140,000 words
# (`002_…`), so bigrams give $140{,}000^2 = 1.96 \cdot 10^{10}$ values. The bigrams do tell
# the two sentences apart:

# %%
bigrams = 140_000**2
print(f"{bigrams:,} bigram counts = {bigrams / 1e9} billion")
assert bigrams == 19_600_000_000


def bigram_bag(sentence):
    w = words(sentence)
    return sorted(zip(w, w[1:]))


print(set(bigram_bag(good)) ^ set(bigram_bag(bad)))
assert bigram_bag(good) != bigram_bag(bad)

# %% [markdown]
# ## Word embeddings: a lookup table
#
# Word embeddings (`001_…`) represent each word by a dense vector of dimension $d$
# (100–500 in practice) instead of a sparse one-hot vector. The embedding layer is the
# first layer of the network: multiplying a one-hot vector by the embedding matrix picks
# one row, so `nn.Embedding` just looks the row up. The notes' table, $d = 4$:

# %%
TABLE = {"the": [0.51, 0.009, 0.43, 0.44], "cat": [0.58, -0.53, 0.25, -0.51],
         "ate": [0.54, -0.64, 0.32, 0.22], "food": [0.42, 0.258, 0.26, 0.25]}
embedding = nn.Embedding(4, 4).double()
embedding.load_state_dict({"weight": np.array(list(TABLE.values()))})
ids = np.array([list(TABLE).index(w) for w in "the cat ate the food".split()])
looked_up = embedding(ids).data
assert np.allclose(looked_up, np.eye(4)[ids] @ embedding.weight.data, rtol=0, atol=0)
assert np.allclose(looked_up[1], TABLE["cat"])
print(looked_up)

# %% [markdown]
# ## Teddy: a word only the future can label
#
# The notes' example for bidirectional RNNs (`002_…`): in "**Teddy** bears are on sale"
# and "**Teddy** Roosevelt was a president" the first word is the same, but only the
# second is a person's name. A forward RNN labels $x^{\langle 1 \rangle}$ having read only
# "Teddy": its output at step 1 is the same for both sentences, so it gets at most one of
# them right. A bidirectional one has also read the rest of the sentence backwards.

# %%
teddy = ["teddy bears are on sale", "teddy roosevelt was a president"]
is_name = np.array([0, 1])                                  # the label of the first word
vocab = sorted({w for s in teddy for w in s.split()})
ids = np.array([[vocab.index(w) for w in s.split()] for s in teddy]).T      # (T = 5, B = 2)


def train_first_word_tagger(bidirectional, seed=0):
    tg.manual_seed(seed)
    embed = nn.Embedding(len(vocab), 6).double()
    rnn = nn.LSTM(6, 8, bidirectional=bidirectional).double()
    head = nn.Linear(16 if bidirectional else 8, 2).double()
    modules = [embed, rnn, head]
    optimizer = nn.optim.Adam([p for m in modules for p in m.parameters()], lr=0.05)
    for _ in range(60):
        output, _ = rnn(embed(ids))
        loss = nn.softmax_cross_entropy(head(output[0]), is_name)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with tg.no_grad():
        return F.softmax(head(rnn(embed(ids))[0][0]), axis=-1).data[:, 1]


forward_only, both_ways = train_first_word_tagger(False), train_first_word_tagger(True)
print("P(Teddy is a name), forward LSTM:      ", forward_only)
print("P(Teddy is a name), bidirectional LSTM:", both_ways)
assert np.isclose(forward_only[0], forward_only[1], rtol=0, atol=1e-15)  # same input so far, same output
assert ((both_ways > 0.5) == is_name.astype(bool)).all()

# %% [markdown]
# ## The notes' GRU and the peephole LSTM
#
# The notes `003_…` write the GRU with the reset gate applied to $h_{t-1}$ **before** the
# recurrent matrix (Cho et al.'s form), and with $z_t = 1$ keeping the old state:
#
# $$r_t = \sigma(W_{xr}^\top x_t + W_{hr}^\top h_{t-1} + b_r),\quad
# z_t = \sigma(W_{xz}^\top x_t + W_{hz}^\top h_{t-1} + b_z),$$
# $$g_t = \tanh(W_{xg}^\top x_t + W_{hg}^\top (r_t \otimes h_{t-1}) + b_g),\quad
# h_t = z_t \otimes h_{t-1} + (1 - z_t) \otimes g_t .$$
#
# `nn.GRUCell(..., reset_after=False)` is this form (PyTorch's default applies $r_t$ after
# the matmul, notebook 4). The peephole LSTM lets the gates see the cell state,
# $f_t = \sigma(W_{cf}^\top c_{t-1} + \dots)$, $i_t = \sigma(W_{ci}^\top c_{t-1} + \dots)$,
# $o_t = \sigma(W_{co}^\top c_t + \dots)$: the output gate sees the *new* cell state. The
# peephole weights are diagonal (one per unit, Gers & Schmidhuber's form):
# `nn.LSTMCell(..., peephole=True)`. Both by hand against the modules:

# %%
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


I, H = 3, 4
rng = np.random.default_rng(5)
x, h, c = rng.normal(size=I), rng.normal(size=H), rng.normal(size=H)

tg.manual_seed(0)
gru = nn.GRUCell(I, H, reset_after=False).double()
W_x, W_h = gru.weight_ih.data, gru.weight_hh.data
b = gru.bias_ih.data + np.r_[gru.bias_hh.data[:2 * H], np.zeros(H)]
b_hn = gru.bias_hh.data[2 * H:]
r = sigmoid(W_x[:H] @ x + W_h[:H] @ h + b[:H])
z = sigmoid(W_x[H:2 * H] @ x + W_h[H:2 * H] @ h + b[H:2 * H])
g = np.tanh(W_x[2 * H:] @ x + W_h[2 * H:] @ (r * h) + b[2 * H:] + b_hn)
notes_gru = z * h + (1 - z) * g
assert np.allclose(gru(x, h).data, notes_gru, rtol=0, atol=1e-14)

tg.manual_seed(0)
peephole = nn.LSTMCell(I, H, peephole=True).double()
a = peephole.weight_ih.data @ x + peephole.bias_ih.data + peephole.weight_hh.data @ h + peephole.bias_hh.data
a_i, a_f, a_g, a_o = np.split(a, 4)
i = sigmoid(a_i + peephole.weight_ci.data * c)
f = sigmoid(a_f + peephole.weight_cf.data * c)
c_next = f * c + i * np.tanh(a_g)
o = sigmoid(a_o + peephole.weight_co.data * c_next)
h_next, c_module = peephole(x, (h, c))
print("GRU (reset before) and peephole LSTM against the notes' equations: largest differences",
      np.abs(gru(x, h).data - notes_gru).max(), np.abs(h_next.data - o * np.tanh(c_next)).max())
assert np.allclose(h_next.data, o * np.tanh(c_next), rtol=0, atol=1e-14)
assert np.allclose(c_module.data, c_next, rtol=0, atol=1e-14)

# %% [markdown]
# ## Layer normalisation and dropout
#
# The notes `003_…` name two more remedies for unstable training: **layer normalisation**,
# which normalises the features *of each sample* with learned gain and bias (batch
# normalisation normalises each feature across the batch instead, which a recurrent step
# with a batch of one cannot do), and **dropout**. `nn.LayerNorm` over the last axis gives
# every row mean 0 and variance 1 (gain 1, bias 0 at initialisation);
# `nn.LSTMCell(..., layer_norm=True)` applies it inside the cell. `nn.Dropout(p)` zeroes a
# fraction $p$ in training and scales the rest by $1/(1-p)$, so the expected value is kept,
# and is the identity in evaluation.

# %%
features = np.random.default_rng(6).normal(3.0, 5.0, size=(4, 64))
normalised = nn.LayerNorm(64).double()(features).data
print("per-sample mean", normalised.mean(axis=1), "variance", normalised.var(axis=1))
assert np.allclose(normalised.mean(axis=1), 0, atol=1e-12)
assert np.allclose(normalised.var(axis=1), 1, atol=1e-4)        # eps = 1e-5 in the denominator

dropout = nn.Dropout(0.25)
tg.manual_seed(0)
dropped = dropout(np.ones((200, 200))).data
kept = dropped != 0
print(f"dropout 0.25: {1 - kept.mean():.3f} zeroed; the rest scaled to {dropped[kept].max():.4f}")
assert abs(1 - kept.mean() - 0.25) < 0.01 and np.allclose(dropped[kept], 1 / 0.75)
dropout.eval()
assert (dropout(np.ones((3, 3))).data == 1).all()

# %% [markdown]
# ## Summary
#
# * Counting weights: $m + n + mn$ for the feed-forward quiz; $\frac{3n^2}{4} + n = 161$
#   gives $n = 14$ without biases, while PyTorch's two recurrent bias vectors make it 177.
# * Backpropagation through time is a sum over paths: quizzes #2 and #3, written with
#   explicit Jacobians, equal autograd to $10^{-12}$.
# * One neuron: $\lvert\partial h^{(t)}/\partial x^{(t-k)}\rvert \le \gamma^{k+1}
#   \lvert w_{hh}\rvert^k \lvert w_{hx}\rvert$, reached by ReLU, four times tighter per step
#   for the sigmoid.
# * Batching [1 … 12] by 2 × 3 and carrying the state gives the whole sequence's states.
# * A stacked LSTM's output is the top layer's $h$; its state is every layer's $(c, h)$.
# * Equal bags of words, different meanings: an LSTM reads the order; bigrams would need
#   19.6 billion counts; only a bidirectional model labels "Teddy".
