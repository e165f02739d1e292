"""Conv1d forward + backward: tensorgrad beside PyTorch and beside plain NumPy unfold-and-matmul.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv1d.py [--repeats 20]

One layer of the issue's size: x (B 32, C 128, L 256), a kernel of 3 with dilation 4 and
padding 4 (output as long as the input), 128 output channels, bias, float32. One measurement
is the forward pass, a weighted sum as the loss, and the backward pass to x, W and b. The
three implementations run in alternation, so that all see the same machine load; the best
of ``--repeats`` rounds is reported (the least disturbed), with the median beside it, and the
ratios of tensorgrad to each peer. Single-threaded BLAS everywhere.

The NumPy peer is the same algorithm written by hand without an autodiff engine: windows
by ``sliding_window_view``, one matmul forward, one matmul per gradient, and the input
gradient folded back with one strided add per kernel tap.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

import tensorgrad as tg  # noqa: E402
import tensorgrad.functions as F  # noqa: E402

B, C, L, K, DILATION, PADDING = 32, 128, 256, 3, 4, 4


def tensorgrad_step(x, w, b, g):
    x, w, b = tg.Variable(x), tg.Variable(w), tg.Variable(b)
    y = F.conv1d(x, w, b, padding=PADDING, dilation=DILATION)
    (y * g).sum().backward()
    return y.data, x.grad.data, w.grad.data, b.grad.data


def numpy_step(x, w, b, g):
    """Forward and backward by hand: the unfold-and-matmul algorithm, no engine."""
    padded = np.pad(x, ((0, 0), (0, 0), (PADDING, PADDING)))
    span = DILATION * (K - 1) + 1
    windows = sliding_window_view(padded, span, axis=-1)[..., ::DILATION]  # (B, C, L_out, K)
    steps = windows.shape[2]
    rows = windows.transpose(0, 2, 1, 3).reshape(B * steps, C * K)
    kernel = w.reshape(w.shape[0], C * K)
    y = (rows @ kernel.T + b).reshape(B, steps, -1).transpose(0, 2, 1)
    gy = np.ascontiguousarray(g.transpose(0, 2, 1)).reshape(B * steps, -1)
    gw = (gy.T @ rows).reshape(w.shape)
    gb = gy.sum(axis=0)
    g_rows = (gy @ kernel).reshape(B, steps, C, K)
    g_padded = np.zeros_like(padded)
    for j in range(K):
        g_padded[:, :, j * DILATION:j * DILATION + steps] += g_rows[:, :, :, j].transpose(0, 2, 1)
    return y, g_padded[..., PADDING:-PADDING], gw, gb


def torch_step(torch, x, w, b, g):
    x, w, b = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv1d(x, w, b, padding=PADDING, dilation=DILATION)
    (y * torch.from_numpy(g)).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


def blas_report():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                     f"{p.get('num_threads')} threads, {os.path.basename(p.get('filepath', ''))})"
                     for p in threadpool_info() if p.get("user_api") == "blas")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, C, L)).astype(np.float32)
    w = (rng.standard_normal((C, C, K)) / np.sqrt(C * K)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    g = rng.standard_normal((B, C, L)).astype(np.float32)

    peers = {"tensorgrad": lambda: tensorgrad_step(x, w, b, g), "numpy": lambda: numpy_step(x, w, b, g)}
    if torch is not None:
        peers["pytorch"] = lambda: torch_step(torch, x, w, b, g)
    reference = peers["numpy"]()
    for name, run in peers.items():  # warm up, and check that all compute the same thing
        for ours, theirs in zip(run(), reference):
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3, err_msg=name)
    times = {name: [] for name in peers}
    for _ in range(args.repeats):
        for name, run in peers.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    print(f"Conv1d forward + backward, x ({B}, {C}, {L}), kernel {K}, dilation {DILATION}, "
          f"padding {PADDING}, {C} output channels, float32; best (median) of {args.repeats}")
    print(f"BLAS: {blas_report()}")
    if torch is not None:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread")
    best = {name: min(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:>10}: {best[name] * 1e3:7.2f} ms ({statistics.median(t) * 1e3:7.2f} ms)")
    for peer in best:
        if peer != "tensorgrad":
            print(f"  tensorgrad / {peer}: {best['tensorgrad'] / best[peer]:.2f}")


if __name__ == "__main__":
    main()
