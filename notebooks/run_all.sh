#!/usr/bin/env bash
# Executes every notebook headless (Debian's jupyter nbconvert and python3 kernel) against the
# built palmsim; PNGs, CSV and JSON land in notebooks/out/. Usage: notebooks/run_all.sh [NOTEBOOK...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PALMSIM_ROOT="$(dirname "$here")"
export PALMSIM_NOTEBOOK_OUT="${PALMSIM_NOTEBOOK_OUT:-$here/out}"
mkdir -p "$PALMSIM_NOTEBOOK_OUT/executed"
books=("$@")
[ ${#books[@]} -gt 0 ] || books=("$here"/*.ipynb)
for nb in "${books[@]}"; do
  echo "notebook: $(basename "$nb")"
  /usr/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
    --output-dir "$PALMSIM_NOTEBOOK_OUT/executed" "$nb" >/dev/null 2>"$PALMSIM_NOTEBOOK_OUT/nbconvert.log" ||
    { cat "$PALMSIM_NOTEBOOK_OUT/nbconvert.log"; exit 1; }
done
ls "$PALMSIM_NOTEBOOK_OUT"/*.png
