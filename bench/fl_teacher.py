"""Which teacher should federated devices learn toward? Style-bank match vs reconstruction fit.

Why: a federation can only approach what its devices' targets teach (issue 17, point 1). This bench
builds, from the same 207 training speakers as devices and the same start model
(`tuner_v0_synthetic.npz`), the federated arrays (b_t, w_p, b_p on the 64-coordinate public
exchange) three ways per teacher:

* pooled: fitted on all devices' data in one place (the bound no federation of them can beat);
* DP: the numpy emulation of `fedtts fl simulate` (`fl_emulate.emulate`: 20 % sampled, 10 % dropout,
  clip 0.3, z 1.0, FedAvgM 2 / 0.5, 15 rounds), per seed;
* plain: the same without clipping and noise.

The teacher is either the device's style-bank match (today's client) or the reconstruction-fitted
style of its first 3–10 s clip (`fedtts train recon-targets`, timbre half; the prosody
half stays the bank match). Every model is written to `--out` and scored by `fedtts eval clone
--methods tuner` on dev/ English with the independent ASV (read only), beside the start model and
the shipped (centrally trained) tuner.

    python bench/fl_teacher.py --recon-targets ~/.cache/fedtts/train/recon_targets_<key> --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from fl_emulate import emulate, load_devices  # same folder

from fedtts.base.tuner_weights import shipped_weights_path, stock_prior
from fedtts.federated.model import federated_arrays, load_start_model, merge_federated, principal_directions
from fedtts.train.tuner import FitConfig, fit_tuner, load_targets
from fedtts.voice.bank import default_bank
from fedtts.voice.tuner import TunerWeights


def with_recon_teacher(devices: list, recon: dict[str, np.ndarray]) -> list:
    """The devices with a reconstruction target: timbre half from it, prosody half the bank match."""
    out = []
    for d in devices:
        if d is None or d.label not in recon:
            out.append(None)
            continue
        out.append(replace(d, style=np.concatenate([recon[d.label][:128], d.style[128:]]).astype(np.float32)))
    return out


def pooled(
    devices: list,
    start: TunerWeights,
    timbre_map: tuple[int, int] | None = None,
    shipped_recipe: bool = False,
) -> TunerWeights:
    """The bound no federation of these devices can beat: the exchanged arrays fitted on all their
    pairs pooled in one place (only a benchmark may do this), projected on the exchange.

    ``timbre_map`` (k_out, k_in): the exchange also carries w_t's change, in prior std, projected on
    k_out public timbre directions × k_in public embedding directions (k_out·k_in more numbers).
    ``shipped_recipe``: fit as the shipped tuner was (the public bank pairs beside the devices' pairs,
    l2 0.3, lr 5e-4, 80 epochs) instead of the devices' pairs alone (l2 1e-3, lr 1e-2, 20 epochs)."""
    usable = [d for d in devices if d is not None]
    xs = np.concatenate([d.features for d in usable])
    ys = np.concatenate([d.targets for d in usable])
    trainable = TunerWeights.FEDERATED if timbre_map is None else (*TunerWeights.FEDERATED, "w_t")
    if shipped_recipe:
        bank = default_bank()
        xs, ys = np.concatenate([xs, bank.features]), np.concatenate([ys, bank.styles])
        cfg = FitConfig(epochs=80, lr=5e-4, batch_size=32, l2=0.3, trainable=trainable)
    else:
        cfg = FitConfig(epochs=20, lr=1e-2, batch_size=32, l2=1e-3, trainable=trainable)
    fitted, _ = fit_tuner(start, xs, ys, cfg.validate())
    out = merge_federated(start, federated_arrays(fitted, start))
    if timbre_map is None:
        return out
    mean, std, _ = stock_prior()
    bank = default_bank()
    b_out = principal_directions((bank.styles[:, :128] - mean[:128]) / std[:128], timbre_map[0])
    b_in = principal_directions(
        (bank.features[:, :256] - start.feat_mean[:256]) / start.feat_std[:256], timbre_map[1]
    )
    d = (fitted.w_t - start.w_t) / std[:128, None]
    proj = b_out @ (b_out.T @ d @ b_in) @ b_in.T
    return replace(out, w_t=(start.w_t + proj * std[:128, None]).astype(np.float32))


def score(model: Path, out: Path, manifest: str) -> dict:
    """`fedtts eval clone --methods tuner` with this model as the tuner (a fresh process)."""
    env = {**os.environ, "FEDTTS_TUNER": str(model)}
    cmd = [sys.executable, "-m", "fedtts.app.cli", "eval", "clone", "--langs", "en", "--methods", "tuner"]
    cmd += ["--no-ablation", "--no-asr", "--no-mos", "--out", str(out)]
    if manifest:
        cmd += ["--manifest", manifest]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    rep = json.loads((out / "clone_report.json").read_text())
    s = rep["summary"]["tuner/en"]
    return {
        "asv_norm": s["asv_norm"],
        "asv_norm_median": s["asv_norm_median"],
        "ge2e_norm": s["ge2e_norm (optimised)"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recon-targets", required=True, help="folder of fedtts train recon-targets")
    ap.add_argument("--clients", type=int, default=207)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--manifest", default="", help="evaluation manifest (default: dev/)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "fl_teacher"))
    ap.add_argument(
        "--timbre-map",
        default="",
        help="also pooled bounds with w_t exchanged: k_out x k_in list, e.g. 8x16,16x32,128x256",
    )
    ap.add_argument("--only-timbre-map", action="store_true", help="skip the emulated runs (bounds only)")
    ap.add_argument(
        "--shipped-recipe", action="store_true", help="w_t bounds fitted as the shipped tuner was"
    )
    ap.add_argument("--teachers", default="bank,recon", help="comma-separated: bank, recon")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emu = argparse.Namespace(
        rounds=args.rounds, fraction=0.2, dropout=0.1, dp=True, noise_multiplier=1.0, clip=0.3,
        lr=0.01, local_epochs=5, server_lr=2.0, server_momentum=0.5,
    )  # fmt: skip
    bank_devices = load_devices(args.clients, 0)
    teachers = {
        "bank": bank_devices,
        "recon": with_recon_teacher(bank_devices, load_targets(Path(args.recon_targets))),
    }
    teachers = {k: v for k, v in teachers.items() if k in args.teachers.split(",")}
    start = load_start_model("")
    models: dict[str, Path] = {
        "start (tuner_v0_synthetic)": out / "start.npz",
        "shipped": shipped_weights_path(),
    }
    start.save(models["start (tuner_v0_synthetic)"])
    recipe = ", shipped recipe" if args.shipped_recipe else ""
    for teacher, devices in teachers.items():
        for spec in [x for x in args.timbre_map.split(",") if x]:
            k_out, k_in = (int(v) for v in spec.split("x"))
            p = out / f"{teacher}_pooled_wt{k_out}x{k_in}.npz"
            pooled(devices, start, (k_out, k_in), args.shipped_recipe).save(p)
            models[f"{teacher} teacher, pooled + w_t {spec}{recipe}"] = p
        if args.only_timbre_map:
            continue
        p = out / f"{teacher}_pooled.npz"
        pooled(devices, start).save(p)
        models[f"{teacher} teacher, pooled bound"] = p
        for seed in [int(s) for s in args.seeds.split(",")]:
            for dp in (True, False) if seed == 0 else (True,):
                glob = emulate(devices, argparse.Namespace(**{**vars(emu), "dp": dp}), seed)
                p = out / f"{teacher}_{'dp' if dp else 'plain'}_s{seed}.npz"
                merge_federated(start, glob).save(p)
                models[f"{teacher} teacher, {'DP' if dp else 'plain'} seed {seed}"] = p
    results = {}
    for name, path in models.items():
        t0 = time.perf_counter()
        results[name] = score(path, out / "eval" / path.stem, args.manifest)
        print(f"{name:34s} ASV norm {results[name]['asv_norm']:.3f} (median {results[name]['asv_norm_median']:.3f})"
              f"  GE2E norm (optimised) {results[name]['ge2e_norm']:.3f}  [{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    doc = {
        "settings": {**vars(args), "emulation": vars(emu)},
        "usable_devices": {t: sum(d is not None for d in ds) for t, ds in teachers.items()},
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    print("wrote", out / "results.json")


if __name__ == "__main__":
    main()
