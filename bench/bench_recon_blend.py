"""How far along the reconstruction fit to go: the timbre half of the style moved a fraction α of the way
from the one-pass (tuner) style to the reconstruction-refined one, scored by the independent ASV beside
the Whisper speech guard, on train/ speakers (never dev/).

    python bench/bench_recon_blend.py [--manifest ../shared/data/train/manifest.jsonl] [--speakers a,b]
                                      [--alphas 0,0.25,0.5,0.75,1] [--json bench/out/recon_blend.json]

One fit per speaker (the shipped ReconConfig), then one clone per α with spectral match on, each
saying the speaker's *other* recording's sentence. The ASV is only read here: it selects nothing at
run time. Prints per α: ASV normalised (mean, median), Whisper error of the clone and of the real
recording on the same sentences, DNSMOS, voiced fraction.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from fedtts.eval.clone_eval import SR, _recon_cloner, _score, _summary, _synth, load_speakers
from fedtts.voice import reference_from_array, resolve_reference
from fedtts.voice.profile import Voice
from fedtts.voice.spectral_match import spectral_match as match_spectrum

ROOT = Path(__file__).resolve().parents[1]


def prompt_manifest(train_manifest: Path, speakers: list[str], out: Path) -> Path:
    """train/ has no prompt roles: per speaker the first 3–10 s clip is the prompt, another segment
    (≥ 2 s) the target (its ground-truth sentence is what the clone says)."""
    rows = [json.loads(x) for x in train_manifest.read_text(encoding="utf-8").splitlines() if x.strip()]
    lines = []
    for spk in speakers:
        rs = [r for r in rows if r["speaker"] == spk]
        prompt = next(r for r in rs if 3.0 <= r["duration_s"] <= 10.0)
        other = next(r for r in rs if r is not prompt and r["duration_s"] >= 2.0)
        for r, role in ((prompt, "prompt"), (other, "target")):
            path = str((train_manifest.parent / r["path"]).resolve())
            lines.append(json.dumps({**r, "path": path, "role": role}, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def blended_cloner(alpha: float):
    """Clone whose timbre half is base + α·(fitted − base); the prosody half stays the tuner's."""
    fitted_clone = _recon_cloner("recon", spectral_match=0.0)

    def clone(s):
        ref = reference_from_array(s.prompt, SR, text=s.prompt_text or None)
        base = resolve_reference(ref, method="tuner", spectral_match=0.0)
        fitted = fitted_clone(s)  # cached per prompt: one fit serves every α
        pack = base.pack.copy()
        pack[:, :128] = base.pack[:, :128] + alpha * (fitted.pack[:, :128] - base.pack[:, :128])
        voice = Voice(name=base.name, pack=pack.astype(np.float32), meta={**fitted.meta, "alpha": alpha})
        return match_spectrum(voice, ref, 1.0)

    return clone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", default=str(ROOT.parent / "shared" / "data" / "train" / "manifest.jsonl"))
    ap.add_argument(
        "--speakers",
        default="ls8051,ls2289,ls6836,ls1841,ls1034,ls1040,ls1069,ls1098",
        help="train/ speakers (the first four are the recon route's tuning speakers); a manifest with "
        "prompt roles (dev/) uses all its English speakers instead",
    )
    ap.add_argument("--alphas", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--mos", action="store_true", help="also DNSMOS (slower)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    manifest = Path(args.manifest)
    if '"role": "prompt"' in manifest.read_text(encoding="utf-8"):  # dev/: prompts are marked
        speakers = load_speakers(manifest, ("en",))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            man = prompt_manifest(manifest, args.speakers.split(","), Path(tmp) / "manifest.jsonl")
            speakers = load_speakers(man, ("en",))
    synth = _synth()
    rows = []
    print(f"{len(speakers)} speakers: {', '.join(s.name for s in speakers)}", flush=True)
    print(
        f"{'alpha':>5} {'ASV norm':>8} {'median':>7} {'WER clone':>9} {'WER real':>8} {'DNSMOS':>6} {'voiced':>6}"
    )
    for alpha in (float(a) for a in args.alphas.split(",")):
        label = f"recon α={alpha:g}"
        res = _score(speakers, blended_cloner(alpha), label, synth, asr=True, mos=args.mos, asv=True)
        summ = _summary(res)[f"{label}/en"]
        rows.append(
            {"alpha": alpha, **summ, "per_speaker": {r.speaker: (r.asv_norm, r.asr_err) for r in res}}
        )

        def f(key: str, fmt: str = "{:.3f}", summ: dict = summ) -> str:
            v = summ.get(key)
            return fmt.format(v) if v is not None else "-"

        print(
            f"{alpha:5.2f} {f('asv_norm'):>8} {f('asv_norm_median'):>7} "
            f"{f('asr_err_clone (same items)', '{:.1%}'):>9} {f('asr_err_real (same items)', '{:.1%}'):>8} "
            f"{f('dnsmos', '{:.2f}'):>6} {f('voiced', '{:.2f}'):>6}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
