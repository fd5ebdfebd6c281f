"""Prints a bench-step --json result in a few lines: throughput, MFU, the costliest ops."""
import json
import sys

r = json.load(open(sys.argv[1]))
print(f"{r['model']} on {r['device']}: {r['tokens_per_s']:.0f} tokens/s, MFU {100 * r['mfu']:.1f} %, "
      f"step {r['step_time_s']:.4f} s")
for name, seconds in sorted(r["per_op"].items(), key=lambda kv: -kv[1])[:12]:
    print(f"  {name:28s} {seconds:.5f} s  {100 * seconds / r['step_time_s']:5.1f} %")
