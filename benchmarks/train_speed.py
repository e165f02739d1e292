"""Characters per second of `tensorgrad train` with its default model, on this machine.

    python benchmarks/train_speed.py [--steps 100] [--threads 1]

Runs the training loop of the command line (built-in corpus, default configuration) for
``--steps`` steps after a few warm-up steps and reports characters per second, the number
the progress bar shows. The README quotes it.
"""

import argparse
import os
import platform
import tempfile
import time

from threadpoolctl import threadpool_limits

from nn.trainer import TrainConfig, Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out, threadpool_limits(args.threads, user_api="blas"):
        trainer = Trainer(TrainConfig(out=out), progress=False, log=lambda *_: None)
        for _ in range(5):
            trainer.train_step()
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        elapsed = time.perf_counter() - start
    config = trainer.config
    chars = args.steps * config.batch * config.seq_len
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} BLAS thread(s)")
    print(f"default model: {config.layers}-layer {config.model.upper()}, hidden {config.hidden}, "
          f"batch {config.batch} x {config.seq_len} characters")
    print(f"{args.steps} steps in {elapsed:.2f} s: {elapsed / args.steps * 1000:.1f} ms per step, "
          f"{chars / elapsed:,.0f} characters per second")


if __name__ == "__main__":
    main()
