"""Federated dictionary: real hashing, real Shamir/AES-GCM, real SecAgg+ over Flower's simulation engine."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedtts.federated.dictsync import (
    DICT_FILE,
    DevicePolicy,
    Entry,
    PolicyError,
    RevealRecord,
    SketchConfig,
    derive_secrets,
    device_sketch,
    gaussian_epsilon,
    load_device_entries,
    make_reveals,
    merge_dictionaries,
    normalize_entry,
    recover_entries,
    run_protocol_local,
    shared_dictionary,
)
from fedtts.frontend.dictionary import DictionaryError, PronunciationDict

COMMON = ("重庆", "chóng qìng")  # held by 6 of 10 devices
RARE = ("张小伟", "zhāng xiǎo wěi")  # held by 2 of 10: identifying
# small KDF cost and little noise so the mechanics are deterministic in tests (epsilon is then large)
TEST_CFG = dict(k=5, max_entries=8, noise_multiplier=0.125, min_clients=10, gate_sigmas=2.0, kdf_log2_n=10)


def _device_rows(i: int) -> list[dict]:
    rows = [{"grapheme": f"私名{i}", "phoneme": "sī míng"}]  # unique to each device
    if i >= 7:  # 3 devices: below k, and below the reveal gate
        rows.append({"grapheme": "AI", "phoneme": "ˈeɪ ˈaɪ"})
    if i < 6:  # two spellings of the same reading: normalisation makes them one entry
        rows.append({"grapheme": COMMON[0], "phoneme": COMMON[1] if i % 2 else "chong2 qing4"})
    if i < 2:
        rows.append({"grapheme": RARE[0], "phoneme": RARE[1]})
    return rows


def _make_devices(root: Path, n: int = 10) -> list[Path]:
    out = []
    for i in range(n):
        d = root / f"device{i:02d}"
        d.mkdir(parents=True)
        rows = _device_rows(i)
        (d / DICT_FILE).write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
        out.append(d)
    return out


def _forbidden(text: str) -> list[bytes]:
    """Byte forms a leaked string could take: UTF-8, UTF-16, JSON \\u escapes."""
    return [text.encode(), text.encode("utf-16-le"), json.dumps(text).strip('"').encode()]


def _leaks(blobs: list[bytes], needles: list[bytes]) -> list[bytes]:
    return [n for n in needles if any(n in b for b in blobs)]


def test_normalisation_merges_spellings():
    assert normalize_entry("重庆", "chóng  qìng") == Entry("重庆", "chong2 qing4")
    assert normalize_entry(" 重庆 ", "chong2 qing4") == Entry("重庆", "chong2 qing4")
    assert normalize_entry("ＡＩ", "ˈeɪ   ˈaɪ") == Entry("AI", "ˈeɪ ˈaɪ")  # NFKC full-width
    with pytest.raises(DictionaryError):
        normalize_entry("重庆", "   ")


def test_malformed_dictionary_lines_rejected_with_line_numbers(tmp_path):
    f = tmp_path / DICT_FILE
    f.write_text('{"grapheme": "重庆", "phoneme": "chóng qìng"}\n\n{"grapheme": "银行"}\n', "utf-8")
    with pytest.raises(DictionaryError, match=r":3: field 'phoneme'"):
        load_device_entries(tmp_path)
    f.write_text('{"grapheme": "重庆", "phoneme": "chóng qìng"}\nnot json\n', "utf-8")
    with pytest.raises(DictionaryError, match=r"G2P_replace_dict.jsonl:2: invalid JSON"):
        load_device_entries(f)


def test_config_and_policy_validation():
    with pytest.raises(ValueError, match="n_buckets"):
        SketchConfig(n_buckets=1000).validate()
    with pytest.raises(ValueError, match="k must be"):
        SketchConfig(k=1).validate()
    pol = DevicePolicy(min_k=5, max_entries=32, min_noise_multiplier=0.5).validate()
    with pytest.raises(PolicyError, match="k=3"):
        pol.check(SketchConfig(k=3))
    with pytest.raises(PolicyError, match="entries"):
        pol.check(SketchConfig(max_entries=64))
    with pytest.raises(PolicyError, match="noise"):
        pol.check(SketchConfig(noise_multiplier=0.1))
    pol.check(SketchConfig())


def test_epsilon_is_exact_gaussian_and_matches_dp_accounting():
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    for z in (0.8, 2.0):
        acc = PLDAccountant()
        acc.compose(dp_accounting.GaussianDpEvent(z))
        ref = acc.get_epsilon(1e-6)
        assert gaussian_epsilon(z, 1.0, 1e-6) == pytest.approx(ref, rel=0.01)
    # composition of 4 syncs = one mechanism at half the noise
    assert gaussian_epsilon(2.0, 1.0, 1e-6, releases=4) == pytest.approx(gaussian_epsilon(1.0, 1.0, 1e-6))
    assert math.isinf(gaussian_epsilon(0.0, 1.0, 1e-6))
    cfg = SketchConfig()  # defaults: 16 entries x 2 hashes -> sensitivity sqrt(32)
    assert cfg.sensitivity == pytest.approx(math.sqrt(32)) and cfg.sigma == pytest.approx(math.sqrt(32))


def test_six_of_ten_promoted_two_of_ten_never_leaves(tmp_path):
    devices = [load_device_entries(d) for d in _make_devices(tmp_path)]
    cfg = SketchConfig(**TEST_CFG)
    transcript: list[bytes] = []
    rep = run_protocol_local(devices, cfg, salt=b"s" * 32, seed=3, transcript=transcript)
    assert [(p.grapheme, p.phoneme, p.devices) for p in rep.promoted] == [("重庆", "chong2 qing4", 6)]
    assert abs(rep.promoted[0].noisy_count - 6) < 4 * rep.sigma
    rare = normalize_entry(*RARE)
    needles = _forbidden(RARE[0]) + _forbidden(RARE[1]) + _forbidden(rare.phoneme)
    assert _leaks(transcript, needles) == []
    assert _leaks(transcript, _forbidden(COMMON[0])) == []  # even the popular entry travels encrypted
    # the gate kept the rare entry (and the unique ones) back entirely: not even its tag was sent
    assert derive_secrets(rare, b"s" * 32, cfg).tag not in b"".join(transcript)
    assert rep.tags_seen == 1 and rep.withheld == 21 - 6  # 21 entries held, only the 6 重庆 revealed
    assert rep.epsilon > 10  # test noise is tiny: the report must say so


def test_k_threshold_needs_k_distinct_devices():
    cfg = SketchConfig(k=5, kdf_log2_n=10)
    salt = b"t" * 32
    e = normalize_entry(*RARE)
    recs = {i: make_reveals([e], salt, cfg, b"key%d" % i, None)[0] for i in range(4)}
    found, stats = recover_entries(recs, salt, cfg)
    assert found == [] and stats["tags_below_k"] == 1
    # asking a device again gives the same point: repeats do not add up to k
    again = {10 + i: make_reveals([e], salt, cfg, b"key0", None)[0] for i in range(3)}
    found, _ = recover_entries({**recs, **again}, salt, cfg)
    assert found == []
    recs[4] = make_reveals([e], salt, cfg, b"key4", None)[0]
    found, _ = recover_entries(recs, salt, cfg)
    assert [(p.grapheme, p.devices) for p in found] == [(RARE[0], 5)]
    # shares from another sync (other salt) lie on another polynomial
    other = make_reveals([e], b"u" * 32, cfg, b"key9", None)[0]
    assert other[0].tag != recs[0][0].tag


def test_bad_share_is_survived_and_forgery_rejected():
    cfg = SketchConfig(k=5, kdf_log2_n=10)
    salt = b"v" * 32
    e = normalize_entry(*COMMON)
    recs = {i: make_reveals([e], salt, cfg, b"k%d" % i, None)[0] for i in range(7)}
    r0 = recs[0][0]
    recs[0] = [RevealRecord(r0.tag, r0.x, (r0.y + 1), r0.ciphertext)]  # one corrupted share
    found, stats = recover_entries(recs, salt, cfg)
    assert [p.grapheme for p in found] == [COMMON[0]] and stats["rejected"] == 0
    # all shares garbage for a tag: nothing decrypts, nothing is promoted
    junk = {i: [RevealRecord(r0.tag, 1000 + i, 7 * i, r0.ciphertext)] for i in range(6)}
    found, stats = recover_entries(junk, salt, cfg)
    assert found == [] and stats["rejected"] == 1


def test_shared_dictionary_loads_and_local_wins(tmp_path):
    from fedtts.federated.dictsync import PromotedEntry

    promoted = [
        PromotedEntry("重庆", "chong2 qing4", 7),
        PromotedEntry("重庆", "zhong4 qing4", 5),
        PromotedEntry("AI", "ˈeɪ ˈaɪ", 6),
    ]
    shared, conflicts = shared_dictionary(promoted)
    assert shared.entries == {"AI": "ˈeɪ ˈaɪ", "重庆": "chong2 qing4"} and len(conflicts) == 1
    shared.save(tmp_path / "shared.jsonl")
    loaded = PronunciationDict.load(tmp_path / "shared.jsonl")
    assert loaded.entries == shared.entries
    merged = merge_dictionaries(PronunciationDict({"重庆": "chóng qìng", "x": "y"}), loaded)
    assert merged.entries == {"AI": "ˈeɪ ˈaɪ", "重庆": "chóng qìng", "x": "y"}


def test_cli_rejects_bad_input_before_starting_flower(tmp_path, capsys):
    from fedtts.app.cli import main

    devs = _make_devices(tmp_path / "d", 3)
    assert main(["fl", "dict-sync", str(devs[0])]) == 2
    (devs[1] / DICT_FILE).write_text('{"grapheme": "a", "phoneme": "b"}\n{"grapheme": 3}\n', "utf-8")
    assert main(["fl", "dict-sync", *map(str, devs)]) == 2
    err = capsys.readouterr().err
    assert "device01/G2P_replace_dict.jsonl:2:" in err


@pytest.mark.federated
def test_flower_simulation_secaggplus_ten_devices(tmp_path):
    pytest.importorskip("flwr")
    from fedtts.federated.dictsync_app import simulate

    dirs = _make_devices(tmp_path / "devices", 10)
    cfg = SketchConfig(**TEST_CFG)
    out = tmp_path / "out"
    salt = b"f" * 32
    res = simulate(dirs, cfg, out, record=True, salt=salt)
    assert res.error is None, res.error
    rep = res.report
    assert rep.devices == 10
    assert [(p.grapheme, p.phoneme, p.devices) for p in rep.promoted] == [("重庆", "chong2 qing4", 6)]
    shared = PronunciationDict.load(out / "G2P_shared_dict.jsonl")
    assert shared.entries == {"重庆": "chong2 qing4"}
    # the SecAgg+ sum is exactly the sum of the 0/1 sketches plus N(0, sigma^2) noise per bucket
    true = sum(
        device_sketch([derive_secrets(e, salt, cfg) for e in load_device_entries(d)], cfg) for d in dirs
    )
    assert true.sum() == 21 * cfg.n_hashes
    resid = res.noisy_sketch - true
    assert abs(resid.mean()) < 0.02 and resid.std() == pytest.approx(rep.sigma, rel=0.05)
    # nothing the server received (4 SecAgg+ stages + reveal replies) nor wrote holds the rare entry
    assert len(res.received) > 100
    rare = normalize_entry(*RARE)
    needles = _forbidden(RARE[0]) + _forbidden(RARE[1]) + _forbidden(rare.phoneme)
    written = [p.read_bytes() for p in out.iterdir()]
    assert _leaks(res.received + written, needles) == []
    assert _leaks(res.received, _forbidden(COMMON[0])) == []
    assert np.isfinite(rep.epsilon) and rep.delta == 1e-6
    # every array the server received is integer (masked, mod 2^32): no plain float sketch arrived
    arrays = [np.load(io.BytesIO(b), allow_pickle=False) for b in res.received if b.startswith(b"\x93NUMPY")]
    big = [a for a in arrays if a.size == cfg.n_hashes * cfg.n_buckets]
    assert len(big) == 10 and all(np.issubdtype(a.dtype, np.integer) for a in big)
