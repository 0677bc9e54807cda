"""Federated pronunciation dictionary: protocol maths (no Flower).

Why: entries that many users add on their own (a common misreading) should reach everybody, while an
entry few users hold (a family name, a private nickname) identifies them and must never leave a device
in the clear. One sync ("epoch", fresh salt) has two phases:

1. **Counting** - each device turns at most ``max_entries`` of its normalised (grapheme, phoneme)
   entries into a 0/1 count sketch (``n_hashes`` rows x ``n_buckets``; a device adds at most 1 per
   bucket), adds its share of Gaussian noise and the sketches are summed under SecAgg+. The noisy sum
   is (epsilon, delta)-DP at user level (L2 sensitivity sqrt(max_entries * n_hashes)).
2. **Reveal** (STAR-style k-threshold encryption) - the server publishes the noisy sketch; a device
   reveals only entries whose noisy count passes the gate, and for each sends tag = H(salt, entry), one
   Shamir share of a key whose degree-(k-1) polynomial is derived from the entry, and the entry
   encrypted under that key. With >= k shares from distinct devices the server interpolates the key
   and decrypts; with fewer it holds points of a polynomial it cannot determine.

All per-entry secrets come from one slow, salted KDF (scrypt) so that testing a guessed entry costs the
server as much as it costs a device. Limits are documented in docs/federated_dictionary.md.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import random
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedtts.frontend.dictionary import DictionaryError, PronunciationDict
from fedtts.frontend.g2p_zh import normalize_pinyin

__all__ = [
    "DICT_FILE",
    "SHARED_DICT_FILE",
    "PRIME",
    "Entry",
    "SketchConfig",
    "DevicePolicy",
    "PolicyError",
    "EntrySecrets",
    "RevealRecord",
    "PromotedEntry",
    "SyncReport",
    "normalize_entry",
    "load_device_entries",
    "select_entries",
    "derive_secrets",
    "device_sketch",
    "client_noise",
    "sketch_estimate",
    "make_reveals",
    "pack_reveals",
    "unpack_reveals",
    "recover_entries",
    "gaussian_epsilon",
    "effective_sigma",
    "shared_dictionary",
    "finish_sync",
    "merge_dictionaries",
    "report_lines",
    "run_protocol_local",
]

DICT_FILE = "G2P_replace_dict.jsonl"
SHARED_DICT_FILE = "G2P_shared_dict.jsonl"
PRIME = 2**521 - 1  # Mersenne prime: the Shamir field (secrets are 256-bit AES keys)
_TAG_LEN = 32
_X_LEN = 16
_Y_LEN = 66  # ceil(521 / 8)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WS = re.compile(r"\s+")


class PolicyError(ValueError):
    """The server asked for weaker privacy than this device's policy allows."""


@dataclass(frozen=True, order=True)
class Entry:
    grapheme: str
    phoneme: str

    def encode(self) -> bytes:
        """Canonical bytes (what is hashed and encrypted)."""
        return json.dumps([self.grapheme, self.phoneme], ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        g, p = json.loads(data.decode("utf-8"))
        if not isinstance(g, str) or not isinstance(p, str):
            raise ValueError("entry must be two strings")
        return cls(g, p)


def normalize_entry(grapheme: str, phoneme: str) -> Entry:
    """NFKC + collapsed whitespace; Chinese readings to tone-number pinyin, so 'chóng qìng' and
    'chong2 qing4' added on two devices count as the same entry."""
    g = _WS.sub(" ", unicodedata.normalize("NFKC", grapheme)).strip()
    p = _WS.sub(" ", unicodedata.normalize("NFKC", phoneme)).strip()
    if not g or not p:
        raise DictionaryError("grapheme and phoneme must be non-empty")
    if _CJK.search(g):
        try:
            p = " ".join(normalize_pinyin(p))
        except ValueError:
            pass  # not pinyin (e.g. IPA for a Chinese brand name): keep as written
    return Entry(g, p)


def load_device_entries(path: Path | str) -> list[Entry]:
    """A device's own entries (file or folder holding G2P_replace_dict.jsonl), normalised, sorted.

    Malformed lines raise DictionaryError("file:LINE: reason") from PronunciationDict.load.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DICT_FILE
    d = PronunciationDict.load(path)
    out = {normalize_entry(g, p) for g, p in d.entries.items()}
    by_g: dict[str, Entry] = {}
    for e in sorted(out):  # one reading per grapheme after normalisation (deterministic choice)
        by_g.setdefault(e.grapheme, e)
    return sorted(by_g.values())


# ----------------------------------------------------------------------------- configuration


@dataclass
class SketchConfig:
    """One sync's public parameters (sent by the server; the device checks them against its policy).

    noise: "distributed" - every device adds N(0, sigma^2 / min_clients), so the SecAgg+ sum carries
    N(0, sigma^2) as long as >= min_clients honest devices survive; "central" - the server adds
    N(0, sigma^2) to the sum (trusts the server with the exact sum). sigma = noise_multiplier * L2
    sensitivity. A device reveals an entry if its noisy count >= k - gate_sigmas * sigma (at least 1).
    """

    k: int = 5
    n_buckets: int = 2**14
    n_hashes: int = 2
    max_entries: int = 16
    noise_multiplier: float = 1.0
    noise: str = "distributed"
    min_clients: int = 8
    delta: float = 1e-6
    gate_sigmas: float = 1.0
    kdf_log2_n: int = 14

    def validate(self) -> SketchConfig:
        if self.k < 2:
            raise ValueError(f"k must be >= 2, got {self.k}")
        if self.n_buckets < 64 or self.n_buckets & (self.n_buckets - 1):
            raise ValueError(f"n_buckets must be a power of two >= 64, got {self.n_buckets}")
        if not 1 <= self.n_hashes <= 8:
            raise ValueError(f"n_hashes must be in 1..8, got {self.n_hashes}")
        if not 1 <= self.max_entries <= 4096:
            raise ValueError(f"max_entries must be in 1..4096, got {self.max_entries}")
        if self.noise_multiplier < 0 or not math.isfinite(self.noise_multiplier):
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.noise not in ("distributed", "central"):
            raise ValueError(f"noise must be 'distributed' or 'central', got {self.noise!r}")
        if self.min_clients < 1:
            raise ValueError(f"min_clients must be >= 1, got {self.min_clients}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.gate_sigmas < 0:
            raise ValueError(f"gate_sigmas must be >= 0, got {self.gate_sigmas}")
        if not 8 <= self.kdf_log2_n <= 20:
            raise ValueError(f"kdf_log2_n must be in 8..20, got {self.kdf_log2_n}")
        return self

    @property
    def sensitivity(self) -> float:
        """User-level L2 sensitivity of the 0/1 sketch: one device flips <= max_entries*n_hashes cells."""
        return math.sqrt(self.max_entries * self.n_hashes)

    @property
    def sigma(self) -> float:
        """Std of the noise on each bucket of the summed sketch."""
        return self.noise_multiplier * self.sensitivity

    @property
    def client_sigma(self) -> float:
        return self.sigma / math.sqrt(self.min_clients) if self.noise == "distributed" else 0.0

    def gate(self, sigma: float | None = None) -> float:
        s = self.sigma if sigma is None else sigma
        return max(1.0, self.k - self.gate_sigmas * s)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> SketchConfig:
        return cls(**json.loads(s)).validate()


@dataclass
class DevicePolicy:
    """The device's own floor: it refuses a server config weaker than this (a curious server could
    otherwise ask for k=2 or no noise)."""

    min_k: int = 5
    max_entries: int = 64
    min_noise_multiplier: float = 0.0
    min_kdf_log2_n: int = 10

    def validate(self) -> DevicePolicy:
        if self.min_k < 2:
            raise ValueError(f"min_k must be >= 2, got {self.min_k}")
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {self.max_entries}")
        if self.min_noise_multiplier < 0:
            raise ValueError(f"min_noise_multiplier must be >= 0, got {self.min_noise_multiplier}")
        return self

    def check(self, cfg: SketchConfig) -> None:
        cfg.validate()
        if cfg.k < self.min_k:
            raise PolicyError(f"server asked for k={cfg.k} < device minimum {self.min_k}")
        if cfg.max_entries > self.max_entries:
            raise PolicyError(
                f"server asked for {cfg.max_entries} entries > device maximum {self.max_entries}"
            )
        if cfg.noise_multiplier < self.min_noise_multiplier:
            raise PolicyError(
                f"server asked for noise multiplier {cfg.noise_multiplier} < {self.min_noise_multiplier}"
            )
        if cfg.kdf_log2_n < self.min_kdf_log2_n:
            raise PolicyError(f"server asked for KDF cost 2^{cfg.kdf_log2_n} < 2^{self.min_kdf_log2_n}")


# ----------------------------------------------------------------------------- per-entry secrets


@dataclass(frozen=True)
class EntrySecrets:
    """Everything a device (or a server that guessed the entry) derives from (salt, entry)."""

    tag: bytes
    key: bytes
    nonce: bytes
    coefficients: tuple[int, ...]  # a_1 .. a_{k-1}; a_0 = int(key)
    buckets: tuple[int, ...]  # one bucket per sketch row


def _h(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, label, hashlib.sha256).digest()


def _nonce(key: bytes) -> bytes:
    """Deterministic AES-GCM nonce from the key: one key encrypts one plaintext (the entry) only."""
    return _h(key, b"nonce")[:12]


def derive_secrets(entry: Entry, salt: bytes, cfg: SketchConfig) -> EntrySecrets:
    """scrypt(entry, salt) -> tag, AES key, nonce, polynomial, buckets (one slow KDF per entry)."""
    n = 1 << cfg.kdf_log2_n
    master = hashlib.scrypt(entry.encode(), salt=salt, n=n, r=8, p=1, dklen=32, maxmem=1 << 30)
    coefs = tuple(
        int.from_bytes(b"".join(_h(master, b"coef%d/%d" % (j, i)) for i in range(3)), "big") % PRIME
        for j in range(1, cfg.k)
    )
    buckets = tuple(
        int.from_bytes(_h(master, b"bucket%d" % r)[:8], "big") % cfg.n_buckets for r in range(cfg.n_hashes)
    )
    key = _h(master, b"key")
    return EntrySecrets(_h(master, b"tag"), key, _nonce(key), coefs, buckets)


def select_entries(entries: Sequence[Entry], max_entries: int, salt: bytes) -> list[Entry]:
    """At most max_entries entries (bounded user contribution); a salt-seeded sample when there are
    more, so successive syncs cover different entries."""
    entries = sorted(set(entries))
    if len(entries) <= max_entries:
        return entries
    rng = random.Random(hashlib.sha256(b"select" + salt).digest())
    return sorted(rng.sample(entries, max_entries))


# ----------------------------------------------------------------------------- phase 1: sketch


def device_sketch(secrets_: Iterable[EntrySecrets], cfg: SketchConfig) -> np.ndarray:
    """[n_hashes, n_buckets] 0/1: a device counts at most once per bucket (bounded sensitivity)."""
    sk = np.zeros((cfg.n_hashes, cfg.n_buckets), np.float64)
    for s in secrets_:
        for r, b in enumerate(s.buckets):
            sk[r, b] = 1.0
    return sk


def client_noise(shape: tuple[int, ...], sigma: float, seed: int | None = None) -> np.ndarray:
    """This device's share of the Gaussian noise (fresh OS entropy unless a test passes a seed)."""
    if sigma <= 0:
        return np.zeros(shape)
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    return rng.normal(0.0, sigma, size=shape)


def sketch_estimate(noisy: np.ndarray, buckets: Sequence[int]) -> float:
    """Count-min estimate: the smallest of the entry's noisy bucket counts."""
    return float(min(noisy[r, b] for r, b in enumerate(buckets)))


def effective_sigma(cfg: SketchConfig, survivors: int, colluders: int = 0) -> float:
    """Noise std actually present in the sum: with distributed noise only honest survivors' shares count."""
    if cfg.noise == "central":
        return cfg.sigma
    honest = max(0, survivors - colluders)
    return cfg.client_sigma * math.sqrt(honest)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_epsilon(sigma: float, sensitivity: float, delta: float, releases: int = 1) -> float:
    """Exact epsilon of `releases` Gaussian mechanisms (analytic Gaussian, Balle & Wang 2018).

    T compositions of N(0, sigma^2) at sensitivity s are one Gaussian mechanism with mu = sqrt(T) s/sigma.
    """
    if sigma <= 0:
        return math.inf
    mu = math.sqrt(releases) * sensitivity / sigma

    def delta_of(eps: float) -> float:
        return _phi(mu / 2 - eps / mu) - math.exp(eps) * _phi(-mu / 2 - eps / mu)

    if delta_of(0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while delta_of(hi) > delta:
        hi *= 2
        if hi > 1e4:
            return math.inf
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


# ----------------------------------------------------------------------------- phase 2: reveal


@dataclass(frozen=True)
class RevealRecord:
    """What a device sends for one entry that passed the gate: no plaintext, one share of the key."""

    tag: bytes
    x: int
    y: int
    ciphertext: bytes


def _poly(a0: int, coefs: Sequence[int], x: int) -> int:
    acc = 0
    for a in reversed((a0, *coefs)):
        acc = (acc * x + a) % PRIME
    return acc


def make_reveals(
    entries: Sequence[Entry],
    salt: bytes,
    cfg: SketchConfig,
    device_key: bytes,
    noisy_sketch: np.ndarray | None,
    derived: dict[Entry, EntrySecrets] | None = None,
) -> tuple[list[RevealRecord], int]:
    """Reveal records for entries whose noisy count passes the gate; returns (records, withheld).

    x = HMAC(device_key, salt || tag): asking the same device twice yields the same point, so a
    server cannot collect k shares from fewer than k devices by repeating the question.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if noisy_sketch is not None and noisy_sketch.shape != (cfg.n_hashes, cfg.n_buckets):
        raise ValueError(f"sketch shape {noisy_sketch.shape} != {(cfg.n_hashes, cfg.n_buckets)}")
    gate = cfg.gate()
    out, withheld = [], 0
    for e in select_entries(entries, cfg.max_entries, salt):
        s = (derived or {}).get(e) or derive_secrets(e, salt, cfg)
        if noisy_sketch is not None and sketch_estimate(noisy_sketch, s.buckets) < gate:
            withheld += 1
            continue
        x = 1 + int.from_bytes(_h(device_key, salt + s.tag)[:_X_LEN], "big")
        y = _poly(int.from_bytes(s.key, "big"), s.coefficients, x)
        ct = AESGCM(s.key).encrypt(s.nonce, e.encode(), s.tag)
        out.append(RevealRecord(s.tag, x, y, ct))
    return out, withheld


def pack_reveals(records: Sequence[RevealRecord]) -> bytes:
    """tag(32) x(16+1) y(66) len(2) ciphertext, repeated: one bytes value for a ConfigRecord."""
    parts = []
    for r in records:
        if len(r.ciphertext) > 65535:
            raise ValueError("ciphertext too long")
        parts.append(
            r.tag
            + r.x.to_bytes(_X_LEN + 1, "big")
            + r.y.to_bytes(_Y_LEN, "big")
            + len(r.ciphertext).to_bytes(2, "big")
            + r.ciphertext
        )
    return b"".join(parts)


def unpack_reveals(data: bytes) -> list[RevealRecord]:
    out, i, n = [], 0, len(data)
    head = _TAG_LEN + _X_LEN + 1 + _Y_LEN + 2
    while i < n:
        if i + head > n:
            raise ValueError("truncated reveal record")
        tag = data[i : i + _TAG_LEN]
        i += _TAG_LEN
        x = int.from_bytes(data[i : i + _X_LEN + 1], "big")
        i += _X_LEN + 1
        y = int.from_bytes(data[i : i + _Y_LEN], "big")
        i += _Y_LEN
        ln = int.from_bytes(data[i : i + 2], "big")
        i += 2
        if i + ln > n:
            raise ValueError("truncated reveal ciphertext")
        out.append(RevealRecord(tag, x, y, data[i : i + ln]))
        i += ln
    return out


def _interpolate_zero(points: Sequence[tuple[int, int]]) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


@dataclass
class PromotedEntry:
    grapheme: str
    phoneme: str
    devices: int  # distinct devices whose shares were received for this entry
    noisy_count: float | None = None


@dataclass
class SyncReport:
    """What the server learned and what it spent; printed by `fedtts fl dict-sync`."""

    promoted: list[PromotedEntry] = field(default_factory=list)
    devices: int = 0
    tags_seen: int = 0
    tags_below_k: int = 0  # entries that sent shares but stayed encrypted (< k devices)
    conflicts: list[str] = field(default_factory=list)
    rejected: int = 0  # tags with >= k shares that failed to decrypt (bad shares)
    epsilon: float = math.inf
    delta: float = 0.0
    sigma: float = 0.0
    sensitivity: float = 0.0
    withheld: int | None = None  # entries devices kept back at the gate (simulation ground truth only)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)


def recover_entries(
    reveals_by_device: dict[int, Sequence[RevealRecord]],
    salt: bytes,
    cfg: SketchConfig,
    noisy_sketch: np.ndarray | None = None,
    max_tries: int = 20,
) -> tuple[list[PromotedEntry], dict]:
    """Server side of phase 2: group shares by tag (one per device), decrypt tags with >= k devices.

    A decrypted entry must re-derive its own tag (so a forged ciphertext cannot ride on a popular tag);
    if a subset of k shares fails (a bad share), other subsets are tried (at most max_tries).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    by_tag: dict[bytes, dict[int, RevealRecord]] = {}
    for dev, recs in reveals_by_device.items():
        for r in recs:
            by_tag.setdefault(r.tag, {}).setdefault(dev, r)  # one share per device per tag
    stats = {"tags_seen": len(by_tag), "tags_below_k": 0, "rejected": 0}
    found: list[PromotedEntry] = []
    rng = random.Random(0)
    for tag, shares in by_tag.items():
        recs = list({r.x: r for r in shares.values()}.values())
        if len(recs) < cfg.k:
            stats["tags_below_k"] += 1
            continue
        entry = None
        subsets = [recs[: cfg.k]] + [rng.sample(recs, cfg.k) for _ in range(max_tries - 1)]
        if len(recs) == cfg.k:
            subsets = subsets[:1]
        for sub in subsets:
            key_int = _interpolate_zero([(r.x, r.y) for r in sub])
            if key_int >> 256:
                continue
            key = key_int.to_bytes(32, "big")
            for r in itertools.islice({r.ciphertext: r for r in sub}.values(), 3):
                try:
                    e = Entry.decode(AESGCM(key).decrypt(_nonce(key), r.ciphertext, tag))
                except (InvalidTag, ValueError):
                    continue
                s = derive_secrets(e, salt, cfg)
                if s.tag == tag and s.key == key:
                    entry = (e, s)
                    break
            if entry:
                break
        if entry is None:
            stats["rejected"] += 1
            continue
        e, s = entry
        noisy = sketch_estimate(noisy_sketch, s.buckets) if noisy_sketch is not None else None
        found.append(PromotedEntry(e.grapheme, e.phoneme, len(recs), noisy))
    return found, stats


# ----------------------------------------------------------------------------- output and merge


def shared_dictionary(promoted: Sequence[PromotedEntry]) -> tuple[PronunciationDict, list[str]]:
    """Promoted entries as a PronunciationDict; one reading per grapheme (most devices win)."""
    best: dict[str, PromotedEntry] = {}
    conflicts = []
    for p in sorted(promoted, key=lambda p: (-p.devices, p.grapheme, p.phoneme)):
        if p.grapheme in best:
            conflicts.append(f"{p.grapheme}: kept {best[p.grapheme].phoneme!r}, dropped {p.phoneme!r}")
            continue
        best[p.grapheme] = p
    return PronunciationDict({g: p.phoneme for g, p in sorted(best.items())}), conflicts


def finish_sync(
    found: Sequence[PromotedEntry], stats: dict, cfg: SketchConfig, devices: int, withheld: int | None = None
) -> tuple[SyncReport, PronunciationDict]:
    """The report of a finished round (privacy spent for ``devices`` contributors) and the shared dictionary."""
    shared, conflicts = shared_dictionary(found)
    sigma = effective_sigma(cfg, devices)
    report = SyncReport(
        promoted=sorted(found, key=lambda p: (p.grapheme, p.phoneme)),
        devices=devices,
        conflicts=conflicts,
        epsilon=gaussian_epsilon(sigma, cfg.sensitivity, cfg.delta),
        delta=cfg.delta,
        sigma=sigma,
        sensitivity=cfg.sensitivity,
        withheld=withheld,
        **stats,
    )
    return report, shared


def merge_dictionaries(local: PronunciationDict, shared: PronunciationDict) -> PronunciationDict:
    """Shared entries under the device's own: a local entry always wins."""
    out = dict(shared.entries)
    out.update(local.entries)
    return PronunciationDict(out)


# ----------------------------------------------------------------------------- reference run


def run_protocol_local(
    devices: Sequence[Sequence[Entry]],
    cfg: SketchConfig,
    salt: bytes | None = None,
    seed: int | None = None,
    transcript: list[bytes] | None = None,
) -> SyncReport:
    """The whole protocol in one process, plain sum in place of SecAgg+ (reference and unit tests).

    `transcript` collects every byte string the server would receive (sketches and reveal blobs).
    """
    cfg.validate()
    salt = secrets.token_bytes(32) if salt is None else salt
    n = len(devices)
    sketch = np.zeros((cfg.n_hashes, cfg.n_buckets))
    derived: list[dict[Entry, EntrySecrets]] = []
    for i, entries in enumerate(devices):
        chosen = select_entries(entries, cfg.max_entries, salt)
        d = {e: derive_secrets(e, salt, cfg) for e in chosen}
        derived.append(d)
        noise_seed = None if seed is None else seed * 1000 + i
        contrib = device_sketch(d.values(), cfg) + client_noise(sketch.shape, cfg.client_sigma, noise_seed)
        if transcript is not None:
            transcript.append(contrib.tobytes())
        sketch += contrib
    if cfg.noise == "central":
        sketch += client_noise(sketch.shape, cfg.sigma, None if seed is None else seed)
    reveals: dict[int, list[RevealRecord]] = {}
    withheld = 0
    for i, entries in enumerate(devices):
        device_key = hashlib.sha256(b"device%d" % i + salt).digest()
        recs, w = make_reveals(entries, salt, cfg, device_key, sketch, derived[i])
        withheld += w
        blob = pack_reveals(recs)
        if transcript is not None:
            transcript.append(blob)
        reveals[i] = unpack_reveals(blob)
    found, stats = recover_entries(reveals, salt, cfg, sketch)
    return finish_sync(found, stats, cfg, n, withheld)[0]


def report_lines(rep: SyncReport) -> list[str]:
    """Human summary for the CLI."""
    lines = [f"devices: {rep.devices}   promoted: {len(rep.promoted)}"]
    for p in rep.promoted:
        nc = "-" if p.noisy_count is None else f"{p.noisy_count:.1f}"
        lines.append(
            f"  {json.dumps({'grapheme': p.grapheme, 'phoneme': p.phoneme}, ensure_ascii=False)}"
            f"  devices={p.devices} noisy_count={nc}"
        )
    lines.append(f"encrypted but below k: {rep.tags_below_k}   undecryptable: {rep.rejected}")
    for c in rep.conflicts:
        lines.append(f"  conflict {c}")
    lines.append(
        f"privacy of the count sketch: epsilon={rep.epsilon:.3f} delta={rep.delta:g} "
        f"(sigma={rep.sigma:.2f}, L2 sensitivity={rep.sensitivity:.2f})"
    )
    return lines
