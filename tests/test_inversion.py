"""Style inversion toward a real LibriSpeech dev speaker: a few steps lower the objective and raise
the speaker similarity; bad inputs are rejected with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

PHONEMES = "ʃiː sˈɛd ðə wˈɛðɚ wʊd biː nˈaɪs tədˈeɪ."  # "She said the weather would be nice today."


def test_config_validation():
    from fedtts.engine.inversion import InversionConfig

    InversionConfig().validate()
    with pytest.raises(ValueError, match="steps"):
        InversionConfig(steps=0).validate()
    with pytest.raises(ValueError, match="lr"):
        InversionConfig(lr=-1).validate()
    with pytest.raises(ValueError, match="f0_weight"):
        InversionConfig(f0_weight=-0.1).validate()


def test_prior_pack_shape():
    from fedtts.engine.inversion import style_prior

    prior = style_prior()
    assert prior.mean.shape == (256,) and (prior.std > 0).all()
    pack = prior.pack(prior.mean)
    assert pack.shape == (510, 256) and np.isfinite(pack).all()


@pytest.mark.torch
@pytest.mark.slow
def test_inversion_raises_similarity(dev_manifest, tmp_path):
    from fedtts.engine.inversion import InversionConfig, invert_style
    from fedtts.engine.torch_model import load_torch_model
    from fedtts.engine.torch_speaker import ge2e, load_audio, resample

    # A male LibriSpeech speaker: far from the (Japanese, mostly female) stock packs.
    row = next(r for r in dev_manifest if r["speaker"] == "ls909" and r["role"] == "prompt")
    model = load_torch_model()

    with pytest.raises(FileNotFoundError, match="not found"):
        invert_style(model, [str(tmp_path / "missing.flac")], [PHONEMES], InversionConfig(steps=1))
    with pytest.raises(ValueError, match="no known phoneme"):
        invert_style(model, [row["abspath"]], ["123"], InversionConfig(steps=1))

    res = invert_style(model, [row["abspath"]], [PHONEMES], InversionConfig(steps=6))
    assert len(res.curve) == 6
    assert min(res.curve[1:]) < res.curve[0]
    assert res.similarity_end > res.similarity_start
    assert res.pack.shape == (510, 256) and np.isfinite(res.pack).all()
    from fedtts.voice.profile import Voice

    assert Voice(name="t", pack=res.pack).style_for(10).shape == (256,)  # usable as a voice pack

    # The returned style, rendered afresh with its own predicted durations, is closer to the target.
    enc = ge2e()
    target = enc.embed_numpy(load_audio(row["abspath"]))
    from fedtts.engine.inversion import style_prior

    sims = []
    for style in (style_prior().mean, res.style):
        with torch.no_grad():
            out = model.forward(model.tokenize(PHONEMES), torch.from_numpy(style))
            sims.append(float(enc.embed(resample(out.audio, 24000, 16000)) @ torch.from_numpy(target)))
    assert sims[1] > sims[0], sims
