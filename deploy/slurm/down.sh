#!/usr/bin/env bash
# Tear down the loopback SLURM cluster that up.sh brought up.
#
#   bash deploy/slurm/down.sh            # keep $PREFIX (config, logs) for inspection
#   bash deploy/slurm/down.sh --purge    # also delete $PREFIX
#
# Order matters: job processes outlive a stopped slurmd, so every job is cancelled first and
# its processes are waited for; then slurmd and slurmctld are stopped by the PIDs in their PID
# files under $PREFIX/run, and munged only if up.sh started it. Nothing is killed by name.
# Running it again when nothing is up changes nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$HERE/common.sh"

PURGE=0
case "${1:-}" in
    "") ;;
    --purge) PURGE=1 ;;
    *) die "usage: $0 [--purge]" ;;
esac
[[ $(id -u) -eq 0 ]] || die "run as root (like up.sh)"

if [[ ! -d $PREFIX ]]; then
    say "nothing to do: $PREFIX does not exist"
    exit 0
fi

ctld=$(pid_from "$RUN/slurmctld.pid")
slurmd=$(pid_from "$RUN/slurmd.pid")

no_jobs() { [[ -z $(squeue -h -o %A 2>/dev/null) ]]; }
no_job_processes() { [[ -z $(scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/') ]]; }

# 1. cancel every job of this cluster and wait for the jobs and their processes to end
if alive "$ctld" slurmctld; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
    if ((${#jobs[@]})); then
        say "cancelling ${#jobs[@]} job(s): ${jobs[*]}"
        scancel "${jobs[@]}" 2>/dev/null || true
        wait_for 60 no_jobs || say "WARNING: jobs still listed after 60 s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
    fi
    if alive "$slurmd" slurmd; then
        wait_for 30 no_job_processes || say "WARNING: job processes still running: $(scontrol listpids | tr '\n' ' ')"
    fi
fi

# 2. the SLURM daemons (only the PIDs recorded in our PID files)
stop_pid "$slurmd" slurmd
stop_pid "$ctld" slurmctld
rm -f "$RUN/slurmd.pid" "$RUN/slurmctld.pid"

# 3. munged, only if up.sh started it
munged=$(pid_from "$MUNGED_OURS")
if [[ -n $munged ]]; then
    stop_pid "$munged" munged
    rm -f "$MUNGED_OURS"
fi

# 4. the /etc/slurm/slurm.conf link, only if up.sh made it and it still points at our config
if [[ -e $ETC_LINK_OURS ]]; then
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
        rm -f "$ETC_CONF"
        say "removed link $ETC_CONF"
    fi
    rm -f "$ETC_LINK_OURS"
fi

for pid_name in "$slurmd slurmd" "$ctld slurmctld" "$munged munged"; do
    # shellcheck disable=SC2086
    set -- $pid_name
    (($# == 2)) || continue
    ! alive "$1" "$2" || die "$2 (PID $1) is still running"
done

if ((PURGE)); then
    rm -rf "$PREFIX"
    say "removed $PREFIX"
fi
say "cluster down"
