"""How many threads the BLAS library behind NumPy's matrix products may use."""


def set_num_threads(count):
    """Let the BLAS library use at most ``count`` threads, as ``torch.set_num_threads`` does.

    The matrices of a small recurrent model are too small to share out: on two cores, one
    thread is often several times faster than two that wait on each other. Needs the
    ``threadpoolctl`` package (in the ``train`` and ``notebooks`` extras).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"set_num_threads: count must be an integer >= 1, got {count!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise ImportError("set_num_threads needs threadpoolctl: pip install threadpoolctl") from None
    threadpool_limits(limits=count, user_api="blas")
