#!/usr/bin/env bash
# One-command GPU check for polyret (< 5 min on a CUDA machine): CPU vs GPU agreement of the same run,
# a 50-step mixed-precision training, an XQuAD-R encode, throughput against the CPU.
#   bash benchmarks/gpu_check.sh [--device cuda:1] [--out gpu_check.json]
# Without a CUDA GPU it prints SKIP and why, and exits 0 (nothing is run). Needs the default model
# (`polyret model prepare`) and the data directory (XQuAD-R, MLQA test) like the other benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
reason=$("$PY" - <<'PY'
import sys
try:
    import torch
except ImportError:
    print(f"{sys.executable} has no torch (set PYTHON=/path/to/polyret/venv/bin/python)")
    raise SystemExit
if torch.version.cuda is None:
    print(f"no CUDA GPU: this torch ({torch.__version__}) is a CPU-only build")
elif not torch.cuda.is_available():
    print("no CUDA GPU: torch sees none (no driver, or CUDA_VISIBLE_DEVICES hides them)")
PY
)
if [[ -n "$reason" ]]; then
  echo "SKIP: ${reason}; benchmarks/gpu_check.sh checks GPU training and encoding and needs a CUDA GPU. Nothing was run."
  exit 0
fi
exec "$PY" benchmarks/gpu_check.py --device cuda "$@"
