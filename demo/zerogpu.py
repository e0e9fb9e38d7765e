"""`on_gpu(fn)`: run `fn` on a borrowed GPU on ZeroGPU Spaces, and unchanged everywhere else.

On a ZeroGPU Space the `spaces` package is installed and `on_gpu` returns `spaces.GPU(fn)`: each call then
borrows a GPU for its length. Anywhere else (a laptop, a CPU or dedicated-GPU Space, the tests) `spaces` is
missing and `fn` comes back as it is. `spaces` is not in requirements.txt: ZeroGPU Spaces provide it, and
outside ZeroGPU its `GPU` is a no-op anyway.

What ZeroGPU expects, and so what a caller of `on_gpu` must do:

- `spaces` is imported before anything initialises CUDA: importing it patches torch so that the main process
  never touches the GPU. Importing this module imports `spaces` when it is there, so app.py imports
  `demo.zerogpu` before `torch`; a CUDA initialisation first is refused with "CUDA has been initialized before
  importing the `spaces` package".
- Wrap functions before `launch()`, when the Blocks are built: at launch ZeroGPU stops a Space that has no
  wrapped function yet ("No @spaces.GPU function detected during startup"). Call them from Gradio event
  handlers (as the handler, or inside one): a call is scheduled on a GPU through the visitor's request.
- Load the models at start-up, outside the wrapped functions, and move them with the string device "cuda"
  (never an integer index). In the main process `torch.cuda.is_available()` says True and `.to("cuda")` is
  recorded; at `launch()` the weights are packed away, so every later use of a model's tensors (predict,
  explain, anything reading weights) must run inside a wrapped function.
- A wrapped function runs in a worker process forked from the app: closures and bound methods work (the
  function itself is never pickled), but its arguments, return value and exceptions are pickled across. Pass
  plain inputs (paths, arrays, strings), return CPU values (no CUDA tensors), and wrap bound methods
  (`on_gpu(predictor.predict)`), not methods in a class body, whose `self` would be pickled per call. State
  changed in the worker does not come back to the app. Coroutine functions are not supported; generators are.
- The Teach tab trains in the app's own process, which has no GPU on ZeroGPU, and a model registered inside
  a worker would not come back to the app: keep Teach off there (the default on every Space).
- `duration` is the GPU time, in seconds, a call may take (ZeroGPU's default: 60). A visitor's call is refused
  when their remaining quota is below it, so a short task should ask for little.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

with contextlib.suppress(ModuleNotFoundError):
    import spaces  # noqa: F401  (on ZeroGPU, must come before torch initialises CUDA; see above)


def gpu_decorator():
    """`spaces.GPU` where the `spaces` package is installed, else None."""
    try:
        import spaces
    except ModuleNotFoundError as e:
        if e.name != "spaces":   # `spaces` is there but broken: on a ZeroGPU Space that must not pass silently
            raise
        return None
    return spaces.GPU


def on_gpu(fn: Callable | None = None, *, duration: int | None = None):
    """`spaces.GPU(fn)` on ZeroGPU Spaces, `fn` itself elsewhere. Use as `on_gpu(fn)`, `@on_gpu` or
    `@on_gpu(duration=10)` (seconds of GPU time a call may take)."""
    if fn is None:
        return lambda f: on_gpu(f, duration=duration)
    gpu = gpu_decorator()
    if gpu is None:
        return fn
    return gpu(fn) if duration is None else gpu(fn, duration=duration)
