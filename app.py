"""Triptych demo: `python app.py` (Hugging Face Spaces runs this file too)."""

from __future__ import annotations

import argparse
import gc
import logging
import os

from demo import zerogpu  # noqa: F401  (first: on ZeroGPU Spaces it imports `spaces`, which must patch torch)
import torch

from demo.blocks import CSS, build_demo, load_models
from demo.predictor import RUNTIMES, checkpoint_root
from training.device import pick_device


def get_args_parser() -> argparse.ArgumentParser:
    on_spaces = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(description="Launch the Triptych demo (image, text and speech tabs).")
    p.add_argument("--host", default="0.0.0.0" if on_spaces else "127.0.0.1",
                   help="address to bind (default: 127.0.0.1 locally, 0.0.0.0 on Spaces)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--checkpoints", default="checkpoints",
                   help="folder with image/, text/ and speech/ checkpoints, or a Hugging Face Hub model id (owner/name: "
                        "one checkpoint, or a repository of such folders), downloaded into the Hub's cache")
    p.add_argument("--runtime", default="torch", choices=RUNTIMES,
                   help="what predictions run on: torch, or onnx (each checkpoint's model.onnx from `python -m training "
                        "export`; onnx-int8: its model.int8.onnx); explanations run PyTorch either way "
                        "(default: %(default)s)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: cuda, then mps, then cpu)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link (Teach then "
                                                        "keeps each visitor's samples and models to their session, "
                                                        "as on a Space)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads per request (default: cores / concurrent requests)")
    teach_default = not on_spaces or os.environ.get("TRIPTYCH_TEACH") == "1"
    p.add_argument("--teach", action=argparse.BooleanOptionalAction, default=teach_default,
                   help="the Teach tab: train a classifier of your own in the browser (default: on, except on a "
                        "Space unless TRIPTYCH_TEACH=1; on a Space each visitor's samples and models stay private "
                        "to their session)")
    p.add_argument("--queue-size", type=int, default=QUEUE_SIZE,
                   help="requests that may wait; later ones get a 'queue is full' error (default: %(default)s)")
    return p


# Limits for a public Space. Uploads larger than MAX_FILE_SIZE are refused by the server (HTTP 413)
# before any of our code runs; at most QUEUE_SIZE requests wait, later ones get a clear "queue is full"
# error instead of piling up; CONCURRENCY requests run at once per event (the models are small, and more
# threads than cores only slows every request down). Batches and Teach runs never wait in that queue: each
# has a lane of its own (demo/lanes.py), so they cannot fill it and turn single predictions away.
MAX_FILE_SIZE = "50mb"
QUEUE_SIZE = 64
CONCURRENCY = 2


def inference_api(models, queue_size: int) -> dict:
    """Gradio's FastAPI app's arguments for `POST /models/<task>/<name>` (demo/api.py) with the tabs' limits:
    the upload size, CONCURRENCY at once, `queue_size` waiting; the routes are in its /openapi.json."""
    from gradio.utils import _parse_file_size   # the upload limit as Gradio itself reads MAX_FILE_SIZE

    from demo import api
    routes = api.routes(models, max_bytes=_parse_file_size(MAX_FILE_SIZE), running=CONCURRENCY, waiting=queue_size)
    return {"routes": routes, "title": "Triptych", "description": api.DESCRIPTION}


def private_sessions(args) -> bool:
    """Whether Teach keeps each visitor's samples and models to their session: on a Space, and behind a public
    --share link, which anyone who has it can open."""
    return bool(os.environ.get("SPACE_ID")) or args.share


def main(argv=None) -> None:
    args = get_args_parser().parse_args(argv)
    # One intra-op thread per running request: CONCURRENCY requests then share the cores without torch's
    # worker threads spinning against each other. Measured on 2 busy cores: a bi-GRU forward pass took
    # 872 ms with 2 threads and 3.7 ms with 1.
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // CONCURRENCY))
    root, from_hub = checkpoint_root(args.checkpoints)
    if from_hub and args.teach:   # taught models would be written into the Hub's cache
        print(f"The Teach tab is off: {args.checkpoints} is a Hub id, and it needs a local model folder.", flush=True)
    # Tracebacks and faults go to the log (stderr), never to a visitor (show_error=False below).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = load_models(root, pick_device(args.device), runtime=args.runtime)
    demo = build_demo(root, args.device, teach=args.teach and not from_hub, sessions=private_sessions(args),
                      models=models)
    # The models and the app are built for good: move them out of the garbage collector's view, so that
    # each collection during a request walks only what that request made.
    gc.collect()
    gc.freeze()
    demo.queue(max_size=args.queue_size, default_concurrency_limit=CONCURRENCY)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False,
                max_file_size=MAX_FILE_SIZE, css=CSS, quiet=True, prevent_thread_lock=True,
                app_kwargs=inference_api(models, args.queue_size))
    print(f"Triptych is running on {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else "")
          + ("" if args.share or os.environ.get("SPACE_ID") else " (python app.py --share adds a public link)"),
          flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
