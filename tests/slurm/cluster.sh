#!/usr/bin/env bash
# Start or stop a real single-node Slurm (slurm-wlm + munge) for tests, as root.
#   cluster.sh start STATE_DIR   -> prints the daemons' PIDs; waits until the node is idle
#   cluster.sh stop STATE_DIR    -> stops the daemons this script started
# The config must live in /etc/slurm: the executor plugin's job step strips SLURM_*
# variables, so SLURM_CONF elsewhere would break the inner srun.
set -euo pipefail
action=$1
state=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
host=$(hostname -s)

if [[ $action == stop ]]; then
  for pid_file in "$state"/slurmd.pid "$state"/slurmctld.pid "$state"/munged.pid; do
    [[ -f $pid_file ]] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  sleep 1
  exit 0
fi

mkdir -p "$state"/ctld "$state"/d "$state"/dev /run/munge /etc/slurm
touch "$state"/dev/nvidia{0..7}
chown munge:munge /run/munge
for f in slurm.conf gres.conf; do
  sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" "$here/$f.in" >/etc/slurm/$f
done
if ! munge -n >/dev/null 2>&1; then  # no working munged (a stale socket may remain)
  [[ -f /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  # munged runs as the munge user: keep its pid file in /run/munge (the state folder
  # may be private to root, as pytest's temporary folders are).
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 20); do munge -n >/dev/null 2>&1 && break; sleep 0.25; done
  cp /run/munge/munged.pid "$state"/munged.pid 2>/dev/null || pgrep -n munged >"$state"/munged.pid
fi
munge -n >/dev/null || { echo "munged did not start" >&2; exit 1; }
/usr/sbin/slurmctld -i
/usr/sbin/slurmd
for _ in $(seq 60); do
  if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix)'; then
    echo "slurm up: $(sinfo -h -o '%P %t %c %G' | tr '\n' ';')"
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm did not come up; see $state/*.log" >&2
exit 1
