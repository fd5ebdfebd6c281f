#!/usr/bin/env bash
# Kills the trainer with SIGKILL while it writes a checkpoint, then shows that the previous
# checkpoint is intact and that resuming gives exactly the losses of an uninterrupted run.
# Usage: tools/kill_during_checkpoint.sh [path/to/palmsim]   (ctest runs it)
set -euo pipefail
palmsim="${1:-build/apps/palmsim}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp /usr/share/games/fortunes/computers /usr/share/games/fortunes/science "$work/corpus/"
cat > "$work/tiny.yaml" <<YAML
model: {name: kill-test, n_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, head_dim: 16, d_ff: 64,
        ffn: swiglu, vocab: 256, seq_len: 32}
training: {global_batch: 4}
train: {steps: 6, checkpoint_every: 2, eval_every: 100, log_every: 100, corpus: $work/corpus,
        held_out_fraction: 0.1}
YAML

# 1. The reference: six steps without interruption.
"$palmsim" train "$work/tiny.yaml" --out "$work/whole" >/dev/null 2>&1

# 2. Two steps (checkpoint at step 2), then resume towards six with the writer pausing halfway
#    through the next checkpoint (step 4), and kill it there.
"$palmsim" train "$work/tiny.yaml" --steps 2 --out "$work/killed" >/dev/null 2>&1
before=$(sha256sum "$work/killed/checkpoint.bin" | cut -d' ' -f1)
PALMSIM_CHECKPOINT_PAUSE_S=60 "$palmsim" train "$work/tiny.yaml" --out "$work/killed" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/killed/checkpoint.bin.tmp" ] && break
  sleep 0.1
done
[ -f "$work/killed/checkpoint.bin.tmp" ] || { echo "FAIL: the checkpoint write never started"; kill -9 $pid; exit 1; }
kill -9 $pid
wait $pid 2>/dev/null || true
after=$(sha256sum "$work/killed/checkpoint.bin" | cut -d' ' -f1)
[ "$before" = "$after" ] || { echo "FAIL: the previous checkpoint changed"; exit 1; }
echo "killed during the step-4 checkpoint write; checkpoint.bin (step 2) unchanged"

# 3. Resume: it must start at step 3 from the intact checkpoint and match the reference exactly.
"$palmsim" train "$work/tiny.yaml" --out "$work/killed" >"$work/resume.log" 2>&1
grep -q "resuming from the checkpoint at step 2" "$work/resume.log" || { echo "FAIL: did not resume from step 2"; exit 1; }
losses() { python3 -c 'import json,sys; [print(json.loads(l)["step"], repr(json.loads(l)["loss"])) for l in open(sys.argv[1])]' "$1"; }
if ! diff <(losses "$work/whole/metrics.jsonl") <(losses "$work/killed/metrics.jsonl"); then
  echo "FAIL: losses after resume differ from the uninterrupted run"
  exit 1
fi
echo "resumed at step 3; losses of steps 1-6 identical to the uninterrupted run"
