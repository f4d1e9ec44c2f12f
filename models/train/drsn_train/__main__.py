"""The command line, and only that: each command's body is in its module
(`fit.cmd_train`, `smoke`, `denoise_fit.cmd_denoise_train`, `ship.cmd_verify`,
`ship.cmd_reexport`, `table`, `denoise_table`, `orders`). Run with
`python -m drsn_train CMD --help`."""
from __future__ import annotations

import argparse
import os

from . import denoise_fit, denoise_table, denoiser, fit, orders, ship, smoke, table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "cwru")
DEFAULT_UESTC = os.path.join(ROOT, "..", "shared", "uestc")



def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m drsn_train")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--data", default=DEFAULT_DATA, help="CWRU folder (default ../shared/cwru)")
        sp.add_argument("--uestc", default=DEFAULT_UESTC, help="UESTC folder (default ../shared/uestc)")
        sp.add_argument("--threads", type=int, default=2)

    def denoiser_parts(sp):
        """Denoiser 2's parts and training noise, defaults from the shipped recipe."""
        on_off = argparse.BooleanOptionalAction
        sp.add_argument("--floor", action=on_off, default=denoiser.SHIPPED["floor"],
                        help="noise-floor conditioning (denoiser.FloorCondition)")
        sp.add_argument("--dc", action=on_off, default=denoiser.SHIPPED["dc"],
                        help="gate the frame's mean (denoiser.DcGate)")
        sp.add_argument("--snr-head", action=on_off, default=denoiser.SHIPPED["snr_head"],
                        help="an input-SNR output (denoiser.SnrHead)")
        sp.add_argument("--features", default=denoiser.SHIPPED["features"], choices=denoiser.HEAD_FEATURES,
                        help="what the DC gate and the SNR head read (denoiser.HEAD_FEATURES)")
        sp.add_argument("--mix", default=denoiser.SHIPPED["mix"], choices=list(denoise_table.NOISE_MIX),
                        help="training noise (denoise_table.NOISE_MIX)")
        sp.add_argument("--refit-head", action=on_off, default=denoiser.SHIPPED["refit_head"],
                        help="fit the SNR head again on the trained body (denoise_fit.HEAD_REFIT)")

    t = sub.add_parser("train", help="train and export one model")
    common(t)
    t.add_argument("--folders", help="your own data: DIR/<class id>/*.wav instead of CWRU")
    t.add_argument("--arch", default="drsn-cw", choices=["conv", "res", "drsn-cs", "drsn-cw"])
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999)")
    t.add_argument("--fine-weight", type=float, default=fit.FINE_WEIGHT,
                   help="weight of the fine-class loss beside the family loss")
    t.add_argument("--rig", default="both", choices=["both", "cwru", "uestc"],
                   help="train on one rig only (the honest protocol's judges: bench/verdict_eval.py); "
                        "it is still measured on both")
    t.add_argument("--name", default="drsn-cw-cwru10")
    t.add_argument("--version", default="2.0.0")
    t.add_argument("--out", default=os.path.join(ROOT, "models"))
    t.set_defaults(func=fit.cmd_train)

    tb = sub.add_parser("table", help="the full comparison; writes models/RESULTS.md")
    common(tb)
    tb.add_argument("--steps", type=int, default=1500)
    tb.add_argument("--seeds", type=int, default=3)
    tb.add_argument("--workers", type=int, default=2)
    tb.add_argument("--stretch", type=float, default=fit.STRETCH, help="random time stretch, +- (0.04 = 4 %%)")
    tb.add_argument("--protocols", default=",".join(table.PROTOCOLS),
                    help="comma-separated subset of: " + ", ".join(table.PROTOCOLS))
    tb.add_argument("--out", default=os.path.join(ROOT, "models"),
                    help="where the results go; runs are cached in OUT/work/results-2.json")
    tb.add_argument("--results", default="RESULTS.md", help="the file written in OUT")
    tb.set_defaults(func=table.cmd_table)

    s = sub.add_parser("smoke", help="tiny train + export + parity check (CI)")
    common(s)
    s.add_argument("--steps", type=int, default=20)
    s.set_defaults(func=smoke.cmd_smoke)

    dt = sub.add_parser("denoise-train", help="train and export the DRSN denoiser (both rigs)")
    common(dt)
    dt.add_argument("--arch", default="drsn", choices=["drsn", "relu"])
    dt.add_argument("--channels", type=int, default=denoiser.SHIPPED["channels"])
    dt.add_argument("--units", type=int, default=4)
    dt.add_argument("--kernel", type=int, default=denoiser.SHIPPED["kernel"],
                    help="the learned transform's length")
    dt.add_argument("--stride", type=int, default=denoiser.SHIPPED["stride"], help="the learned transform's hop")
    dt.add_argument("--loss", default="snr", choices=denoise_fit.LOSSES)
    denoiser_parts(dt)
    dt.add_argument("--steps", type=int, default=denoiser.SHIPPED["steps"])
    dt.add_argument("--seed", type=int, default=0)
    dt.add_argument("--name", default="drsn-denoise")
    dt.add_argument("--version", default="2.2.0")
    dt.add_argument("--out", default=os.path.join(ROOT, "models"))
    dt.add_argument("--weights", help="export these weights (saved by an earlier run) instead of training")
    dt.add_argument("--train-seconds", default=0, help="with --weights: how long their training took")
    dt.set_defaults(func=denoise_fit.cmd_denoise_train)

    dtb = sub.add_parser("denoise-table", help="DRSN vs ReLU vs the classics; writes models/RESULTS-denoise.md")
    common(dtb)
    dtb.add_argument("--channels", type=int, default=denoiser.SHIPPED["channels"])
    dtb.add_argument("--units", type=int, default=4)
    dtb.add_argument("--kernel", type=int, default=denoiser.SHIPPED["kernel"])
    dtb.add_argument("--stride", type=int, default=denoiser.SHIPPED["stride"])
    dtb.add_argument("--steps", type=int, default=denoiser.SHIPPED["steps"])
    denoiser_parts(dtb)
    dtb.add_argument("--seeds", type=int, default=3)
    dtb.add_argument("--relu-seeds", type=int, default=3, help="seeds of the ReLU control row")
    dtb.add_argument("--workers", type=int, default=2)
    dtb.add_argument("--out", default=os.path.join(ROOT, "models"))
    dtb.set_defaults(func=denoise_table.cmd_table)

    o = sub.add_parser("orders", help="experiment: train and test in the order domain (issue 14)")
    common(o)
    o.add_argument("--samples-per-rev", type=int, default=400)
    o.add_argument("--envelope", action="store_true", help="demodulate above 1 kHz first")
    o.add_argument("--protocols", default="cwru-only,loso-28,uestc-only,loss-1400")
    o.add_argument("--seeds", default="0,1,2")
    o.add_argument("--steps", type=int, default=1500)
    o.add_argument("--workers", type=int, default=2)
    o.set_defaults(func=orders.cmd_orders)

    v = sub.add_parser("verify", help="check a shipped model against its manifest and parity vectors")
    v.add_argument("manifest")
    v.set_defaults(func=ship.cmd_verify)

    r = sub.add_parser("reexport", help="export a shipped model again from its .pt weights")
    r.add_argument("manifest")
    r.add_argument("--version", required=True)
    r.set_defaults(func=ship.cmd_reexport)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
