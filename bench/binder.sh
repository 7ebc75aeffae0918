#!/bin/sh
# Run every lesson the way mybinder.org would: 1 CPU (a CFS quota on a many-core host, not an
# affinity mask, so torch sees all cores and tlkit must read the quota), 2 GB of memory, no
# network. Needs root and cgroup v1 (cpu, memory) mounted at /sys/fs/cgroup, as on this machine.
#
#     sudo sh bench/binder.sh                  # every lesson
#     sudo sh bench/binder.sh course/05_*.ipynb
#
# Prints bench/lessons.py's table, then the cgroup's own peak memory and OOM kills.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CPU=/sys/fs/cgroup/cpu/tlkit-binder
MEM=/sys/fs/cgroup/memory/tlkit-binder
if [ ! -d /sys/fs/cgroup/cpu ] || [ ! -d /sys/fs/cgroup/memory ]; then
    echo "bench/binder.sh needs cgroup v1 cpu and memory controllers at /sys/fs/cgroup" >&2
    exit 2
fi
mkdir -p "$CPU" "$MEM"
cat "$CPU/cpu.cfs_period_us" > "$CPU/cpu.cfs_quota_us"     # 1 CPU
echo $((2 * 1024 * 1024 * 1024)) > "$MEM/memory.limit_in_bytes"
echo 0 > "$MEM/memory.max_usage_in_bytes" 2>/dev/null || true
PATH="$(pwd)/.venv/bin:$PATH" unshare -n sh -c "
    echo \$\$ > $CPU/cgroup.procs && echo \$\$ > $MEM/cgroup.procs && ip link set lo up &&
    $PY -c 'from tlkit.core.device import available_cpus; print(\"tlkit sees\", available_cpus(), \"CPU(s)\")' &&
    $PY bench/lessons.py $*"
echo "BINDER cgroup peak $(($(cat "$MEM/memory.max_usage_in_bytes") / 1000000)) MB (limit 2147 MB)," \
     "OOM kills: $(grep -s oom_kill "$MEM/memory.oom_control" | awk '{print $2}')"
