#!/usr/bin/env bash
# The scaling run (BENCHMARKS.md, "Workers"): seed and SNTP requests a
# second at 1, 2, 4 and 8 workers, horad's workers pinned to cores 0-7 and
# eight load generators to cores 8-15, on a machine with 16 cores or more.
# One script for every point, about three minutes; it needs only the two
# release binaries, so it runs on a machine without a build tree:
#
#   cargo build --release --bins --examples
#   bash bench/scaling.sh            # or, elsewhere:
#   HORAD=./horad LOADGEN=./loadgen bash bench/scaling.sh
#
# Goal (issue #23): >= 3.5x one worker at 4 workers, >= 6x at 8.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc)
if [ "$cores" -lt 16 ]; then
  echo "scaling.sh: $cores cores; it wants 16 (8 for workers, 8 for load)" >&2
  exit 2
fi
ulimit -n 65536 2>/dev/null || true
for mode in seed sntp; do
  echo "== $mode"
  PIN=1 CORES_FROM=8 DURATION=${DURATION:-5s} bash bench/workers.sh "$mode" "${ROUNDS:-3}" "1 2 4 8" 8
done
