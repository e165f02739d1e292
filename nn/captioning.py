"""Image captioning as the notes write it (Karpathy & Fei-Fei, 2015): an image vector enters
a recurrent network at the first step only, and the network then says what it sees.

    b_v = W_hi · CNN(I)
    h_t = f(W_hx x_t + W_hh h_{t-1} + b_h + 𝟙(t=1) ⊙ b_v),   h_0 = 0,  x_1 = the START vector
    y_t = softmax(W_oh h_t + b_o)

Training feeds the true words (x_{t+1} = the embedding of word t) and maximises their log
probability; captioning feeds each predicted word back in until END.

The notes' CNN is a network pre-trained on ImageNet, which this project cannot download.
Its place is taken by :class:`PixelEncoder`, an MLP over the pixels, ReLU(W_e · vec(I) + b_e):
all the equations ask of CNN(I) is a feature vector of the image, and on the small
generated pictures of :func:`nn.tasks.shape_captions`, where each shape sits in one of three
fixed slots, a layer of pixel detectors learns those features from the captions alone.
"""

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn.generate import sample_next
from nn.layers import Embedding, Linear
from nn.losses import softmax_cross_entropy
from nn.module import Module
from nn.optim import Adam
from nn.tasks import CAPTION_VOCAB

PAD, START, END = (CAPTION_VOCAB.index(w) for w in ("<pad>", "<start>", "<end>"))
IMAGE_AT = ("first", "every", "never")
VOCAB_SIZE = len(CAPTION_VOCAB)


class PixelEncoder(Module):
    """CNN(I) ≈ ReLU(W_e · vec(I) + b_e): images (B, C, H, W) → features (B, feature_size)."""

    def __init__(self, image_shape, feature_size):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.linear = Linear(int(np.prod(self.image_shape)), feature_size)

    def forward(self, images):
        images = tg.as_variable(images)
        if images.shape[1:] != self.image_shape:
            expected = ", ".join(map(str, self.image_shape))
            raise tg.ShapeError(f"PixelEncoder: expected images of shape (B, {expected}), got {images.shape}")
        pixels = images.reshape(images.shape[0], -1).astype(self.linear.weight.dtype)  # in the model's dtype
        return F.relu(self.linear(pixels))


class Captioner(Module):
    """The notes' captioning RNN; ``image_at`` says where b_v is added: ``"first"`` (the notes,
    𝟙(t=1)), ``"every"`` step, or ``"never"`` (a language model blind to the image)."""

    def __init__(self, image_shape, vocab_size=VOCAB_SIZE, embedding_size=32, hidden_size=64,
                 feature_size=64, image_at="first"):
        super().__init__()
        if image_at not in IMAGE_AT:
            raise ValueError(f"Captioner: image_at must be one of {IMAGE_AT}, got {image_at!r}")
        self.image_at = image_at
        self.hidden_size = hidden_size
        self.encoder = PixelEncoder(image_shape, feature_size)
        self.W_hi = Linear(feature_size, hidden_size, bias=False)
        self.embedding = Embedding(vocab_size, embedding_size)
        self.W_hx = Linear(embedding_size, hidden_size)  # its bias is b_h
        self.W_hh = Linear(hidden_size, hidden_size, bias=False)
        self.W_oh = Linear(hidden_size, vocab_size)  # its bias is b_o

    def image_vector(self, images):
        """b_v = W_hi · CNN(I), (B, hidden_size)."""
        with tg.scope("image"):
            return self.W_hi(self.encoder(images))

    def step(self, x, h, b_v, t):
        """h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h + 𝟙(t=1) ⊙ b_v), for t = 1, 2, ..."""
        a = self.W_hx(x) + self.W_hh(h)
        if self.image_at == "every" or (self.image_at == "first" and t == 1):
            a = a + b_v
        return F.tanh(a)

    def forward(self, images, words):
        """Logits (T, B, V) of y_1 .. y_T given the images and the input words (T, B): START and
        then the caption's words (teacher forcing)."""
        b_v = self.image_vector(images)
        h = tg.Variable(np.zeros((words.shape[1], self.hidden_size), b_v.dtype), requires_grad=False)
        xs = self.embedding(words)
        logits = []
        for t in range(1, words.shape[0] + 1):
            with tg.scope(f"t={t}"):
                h = self.step(xs[t - 1], h, b_v, t)
                logits.append(self.W_oh(h))
        return F.stack(logits)

    @tg.no_grad()
    def caption(self, images, max_length=12, temperature=None, rng=None):
        """Word ids (T, B) for each image, greedy (``temperature`` None) or sampled, each ending in
        END (or cut at ``max_length``); the words after an image's END are PAD."""
        b_v = self.image_vector(images)
        batch = b_v.shape[0]
        h = tg.Variable(np.zeros((batch, self.hidden_size), b_v.dtype))
        word = np.full(batch, START)
        done = np.zeros(batch, bool)
        out = []
        for t in range(1, max_length + 1):
            h = self.step(self.embedding(word), h, b_v, t)
            logits = self.W_oh(h).data
            word = logits.argmax(-1) if temperature is None else sample_next(logits, temperature, rng=rng)
            out.append(np.where(done, PAD, word))
            done |= word == END
            if done.all():
                break
        return np.stack(out)


def teacher_forcing(captions):
    """(inputs, targets) for training on captions (T, B): inputs START, w_1, ..., w_{T-1};
    targets w_1, ..., w_T with the padding after END marked -100 (ignored by the loss).

    Both are Variables computed on the tape, so that a ``tg.jit`` replay of a loss builds
    them from each call's captions."""
    captions = tg.as_variable(captions)
    start = np.full((1, captions.shape[1]), START, dtype=captions.dtype)
    inputs = F.concat([start, captions[:-1]])
    return inputs, F.where(captions == PAD, -100, captions)


def caption_loss(model, images, captions):
    """Mean cross-entropy per word (END included) of the true captions."""
    inputs, targets = teacher_forcing(captions)
    logits = model(images, inputs)
    return softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train_captioner(model, images, captions, steps, batch_size=64, lr=5e-3, seed=0):
    """Adam on random minibatches of (images (N, ...), captions (T, N)); returns the losses."""
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        rows = rng.choice(images.shape[0], batch_size, replace=False)
        loss = caption_loss(model, images[rows], captions[:, rows])
        model.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def exact_match(predicted, captions):
    """The fraction of images whose caption (T, B) is predicted word for word, END included."""
    length = max(predicted.shape[0], captions.shape[0])
    padded = [np.pad(c, ((0, length - c.shape[0]), (0, 0))) for c in (predicted, captions)]
    return float(np.mean(np.all(padded[0] == padded[1], axis=0)))
