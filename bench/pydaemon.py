"""The daemon a user would otherwise write in Python: a yardstick for drsnd.

One raw f32le stream from a FIFO, frames of 2048 at hop 512, the same model,
the same NDJSON frame messages over a Unix socket (asyncio). Two backends:
onnxruntime on the shipped ONNX, or PyTorch eager on the shipped checkpoint
(how the DRSN reference implementations run). One inference thread each.

    python bench/pydaemon.py --fifo F --socket S --backend ort|torch [--model models/drsn-cw-cwru10.json]

Not part of the product; bench/run.sh measures it beside drsnd.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

import numpy as np

FRAME, HOP = 2048, 512


class OrtBackend:
    def __init__(self, manifest: dict, folder: str):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(os.path.join(folder, manifest["onnx"]), opts,
                                         providers=["CPUExecutionProvider"])
        self.names = [manifest["probs_output"]] + [t["name"] for t in manifest["thresholds"]]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        outs = self.sess.run(self.names, {"signal": x[None, None, :]})
        return outs[0][0], [t[0] for t in outs[1:]]


class TorchBackend:
    def __init__(self, manifest: dict, folder: str):
        import torch

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "train"))
        from drsn_train.model import Net

        torch.set_num_threads(1)
        self.torch = torch
        self.net = Net(manifest["architecture"])
        ckpt = os.path.join(folder, manifest["name"] + ".pt")
        self.net.load_state_dict(torch.load(ckpt, map_location="cpu"))
        self.net.eval()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        with self.torch.inference_mode():
            logits, taus = self.net(self.torch.from_numpy(x).view(1, 1, -1))
            probs = self.torch.softmax(logits, dim=-1)
        return probs[0].numpy(), [t[0].numpy() for t in taus]


class Hub:
    """Subscribers' writers; a line goes to each, a slow one is dropped."""

    def __init__(self):
        self.writers: set[asyncio.StreamWriter] = set()

    def broadcast(self, line: bytes) -> None:
        for w in list(self.writers):
            if w.transport.get_write_buffer_size() > 4 << 20:
                self.writers.discard(w)
                w.close()
                continue
            w.write(line)


def reader(fifo: str, model, classes: list[str], sha: str, loop, hub: Hub, stream: str) -> None:
    """Blocking FIFO reads, framing and inference on one thread."""
    buf = np.zeros(0, dtype=np.float32)
    seq, start = 0, 0
    with open(fifo, "rb", buffering=0) as f:
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            t_in = time.time()
            buf = np.concatenate([buf, np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype="<f4")])
            while len(buf) >= FRAME:
                x = buf[:FRAME]
                probs, taus = model(x)
                top = int(np.argmax(probs))
                msg = {
                    "type": "frame", "seq": seq, "stream": stream, "sample_index": start,
                    "time": t_in, "label": classes[top], "confidence": float(probs[top]),
                    "probs": probs.tolist(), "thresholds": [t.tolist() for t in taus],
                    "rms": float(np.sqrt(np.mean(x * x))), "peak": float(np.max(np.abs(x))),
                    "flags": [], "latency_ms": (time.time() - t_in) * 1e3, "model": sha,
                }
                line = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
                loop.call_soon_threadsafe(hub.broadcast, line)
                buf = buf[HOP:]
                seq += 1
                start += HOP


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fifo", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--backend", choices=["ort", "torch"], required=True)
    p.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "models", "drsn-cw-cwru10.json"))
    p.add_argument("--stream", default="s0")
    args = p.parse_args()
    with open(args.model) as f:
        manifest = json.load(f)
    folder = os.path.dirname(os.path.abspath(args.model))
    model = (OrtBackend if args.backend == "ort" else TorchBackend)(manifest, folder)
    classes = [c["id"] for c in manifest["classes"]]
    hub = Hub()
    hello = (json.dumps({"type": "hello", "model": manifest["name"], "streams": [args.stream]}) + "\n").encode()

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(hello)
        hub.writers.add(w)
        try:
            while await r.readline():
                pass  # commands are ignored by this yardstick
        finally:
            hub.writers.discard(w)
            w.close()

    server = await asyncio.start_unix_server(client, path=args.socket)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(target=reader, daemon=True,
                     args=(args.fifo, model, classes, manifest["sha256"], loop, hub, args.stream)).start()
    async with server:
        await stop.wait()
    os.unlink(args.socket)


if __name__ == "__main__":
    asyncio.run(main())
