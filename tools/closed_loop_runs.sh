#!/usr/bin/env bash
# The closed loop as a user runs it, N times back to back: `calibrate --quick` then
# `validate-local --json` on one trainer config. Prints one row per loop (raw error, the measured
# drift, the drift-corrected error, the step's median and its interval) and the |error|
# distribution. Usage: tools/closed_loop_runs.sh CONFIG [N=10] [--config-calibration]
#   --config-calibration  calibrate with --config CONFIG (needed when the config has several
#                         ranks: each rank's figures are then measured on its share of the cores)
set -euo pipefail
config=${1:?usage: tools/closed_loop_runs.sh CONFIG [N] [--config-calibration]}
n=${2:-10}
extra=()
[[ "${3:-}" == "--config-calibration" ]] && extra=(--config "$config")
palmsim=${PALMSIM:-build/apps/palmsim}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$n"); do
  "$palmsim" calibrate --backend cpu --quick "${extra[@]}" -o "$work/cal.json" --force >/dev/null 2>&1
  "$palmsim" validate-local "$config" --calibration "$work/cal.json" --json > "$work/loop$i.json"
done
python3 - "$work" "$n" "$config" <<'PY'
import json, statistics, sys
work, n, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.load(open(f"{work}/loop{i}.json")) for i in range(1, n + 1)]
print(f"{config}: {n} loops of calibrate --quick + validate-local")
print(f"{'loop':>4} {'predicted s':>11} {'measured s':>10} {'interval s':>17} {'compute x':>9} {'memory x':>8}"
      f" {'corrected s':>11} {'raw %':>7} {'corr. %':>7}")
for i, r in enumerate(rows, 1):
    lo, hi = r["measured_interval_s"]
    print(f"{i:>4} {r['predicted_step_s']:>11.4f} {r['measured_step_s']:>10.4f} {lo:>8.4f}-{hi:<8.4f}"
          f" {r['compute_drift']:>9.3f} {r['memory_drift']:>8.3f} {r['corrected_step_s']:>11.4f}"
          f" {r['err_pct']:>+7.1f} {r['corrected_err_pct']:>+7.1f}")
if any(r["predicted_bubble_s"] > 0 or r["measured_bubble_s"] > 0 for r in rows):  # a pipeline: its bubble
    print("pipeline bubble per loop (predicted s / measured s): " +
          ", ".join(f"{r['predicted_bubble_s']:.4f} / {r['measured_bubble_s']:.4f}" for r in rows))
for key, name in (("err_pct", "raw"), ("corrected_err_pct", "drift-corrected")):
    a = [abs(r[key]) for r in rows]
    print(f"|error| {name}: median {statistics.median(a):.1f} %, max {max(a):.1f} %, min {min(a):.1f} %")
PY
