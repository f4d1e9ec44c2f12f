"""The one step every shipped model goes through, written once: the ONNX
export, parity vectors from PyTorch, onnxruntime checked against them, and
the manifest that names the ONNX file by its sha256. `kind` is the model's
export module: `export` (the classifier) or `denoise_export`. Also the
`verify` and `reexport` commands, which redo parts of that step."""
from __future__ import annotations

import json
import os
import sys

import torch

from . import export


def export_checked(kind, net, out_dir: str, name: str) -> tuple[str, float]:
    """`<name>.onnx` and `<name>.parity.json` in `out_dir`; returns the ONNX
    path and onnxruntime's worst difference from PyTorch on the parity cases."""
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    kind.export_onnx(net, onnx_path)
    parity = kind.write_parity(net, os.path.join(out_dir, f"{name}.parity.json"))
    return onnx_path, kind.check_onnxruntime(onnx_path, parity)


def write_manifest(kind, net, path: str, name: str, version: str, onnx_path: str,
                   training: dict, metrics: dict) -> dict:
    """The manifest at `path`, for the ONNX file beside it."""
    doc = kind.manifest(net, name, version, os.path.basename(onnx_path), onnx_path, training, metrics)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return doc


def cmd_verify(args) -> None:
    """The shipped model as committed: manifest, sha256, outputs, parity in onnxruntime."""
    import onnxruntime as ort

    from . import denoise_export

    with open(args.manifest) as f:
        m = json.load(f)
    base = os.path.dirname(os.path.abspath(args.manifest))
    onnx_path = os.path.join(base, m["onnx"])
    if export.sha256(onnx_path) != m["sha256"]:
        sys.exit(f"{onnx_path}: sha256 does not match {args.manifest}")
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    embedding = [m["embedding_output"]["name"]] if "embedding_output" in m else []
    if m.get("kind") == "denoiser":
        snr = [m["snr_output"]] if "snr_output" in m else []
        want = [m["denoised_output"], *[t["name"] for t in m["thresholds"]], *snr]
        if names != want:
            sys.exit(f"{onnx_path}: outputs {names}, manifest says {want}")
        with open(onnx_path[: -len(".onnx")] + ".parity.json") as f:
            parity = json.load(f)
        worst = denoise_export.check_onnxruntime(onnx_path, parity)
        print(f"verify: {m['name']} {m['version']}: sha256 ok, {len(names)} outputs as the manifest "
              f"says, onnxruntime vs PyTorch parity max relative diff {worst:.2e} over "
              f"{len(parity['cases'])} cases (<= {parity['tolerance']}"
              + "".join(f"; {k} within {v}" for k, v in parity.get("absolute", {}).items()) + ")")
        return
    family = [m["family_output"]] if "family_output" in m else []
    want = [m["probs_output"], *family, *embedding, *[t["name"] for t in m["thresholds"]]]
    if names != want:
        sys.exit(f"{onnx_path}: outputs {names}, manifest says {want}")
    parity_path = onnx_path[: -len(".onnx")] + ".parity.json"
    with open(parity_path) as f:
        parity = json.load(f)
    worst = export.check_onnxruntime(onnx_path, parity)
    print(f"verify: {m['name']} {m['version']}: sha256 ok, {len(names)} outputs as the manifest says, "
          f"onnxruntime vs PyTorch parity max |diff| {worst:.2e} over {len(parity['cases'])} cases "
          f"(<= {parity['tolerance']})")


def cmd_reexport(args) -> None:
    """Exports a shipped model again from its weights (`<name>.pt` beside the
    manifest), keeping its training record: for a change of the exported
    outputs, not of the network."""
    from .model import Net

    with open(args.manifest) as f:
        old = json.load(f)
    base = os.path.dirname(os.path.abspath(args.manifest))
    net = Net(old["architecture"], len(old["classes"]), len(old.get("families", [])))
    net.load_state_dict(torch.load(os.path.join(base, f"{old['name']}.pt"), weights_only=True))
    net.eval()
    onnx_path, worst = export_checked(export, net, base, old["name"])
    metrics = dict(old["metrics"], parity_max_abs_diff_onnxruntime=worst)
    doc = write_manifest(export, net, args.manifest, old["name"], args.version, onnx_path,
                         old["training"], metrics)
    print(f"reexport: {old['name']} {args.version}: parity {worst:.2e}, sha256 {doc['sha256']}")
