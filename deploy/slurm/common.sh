# shellcheck shell=bash disable=SC2034  # (variables are used by the scripts that source this)
# Settings and helpers shared by up.sh and down.sh (sourced, not run).
#
# Everything the loopback cluster writes lives under $PREFIX:
#   etc/slurm.conf   etc/env.sh   state/   run/ (PID files)   log/
# Settings (environment variables):
#   LOCALSHARP_SLURM_PREFIX     default /var/tmp/localsharp-slurm
#   LOCALSHARP_SLURM_PARTITION  default debug
#   LOCALSHARP_SLURMCTLD_PORT   default 6817
#   LOCALSHARP_SLURMD_PORT      default 6818
#   LOCALSHARP_SLURM_LINK_ETC   default 1: link /etc/slurm/slurm.conf to our config when that
#                               path is free, so plain `sinfo`/`sbatch` find the cluster

PREFIX=${LOCALSHARP_SLURM_PREFIX:-/var/tmp/localsharp-slurm}
PARTITION=${LOCALSHARP_SLURM_PARTITION:-debug}
SLURMCTLD_PORT=${LOCALSHARP_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${LOCALSHARP_SLURMD_PORT:-6818}
LINK_ETC=${LOCALSHARP_SLURM_LINK_ETC:-1}

CONF=$PREFIX/etc/slurm.conf
RUN=$PREFIX/run
ETC_CONF=/etc/slurm/slurm.conf
# Records of what up.sh started or created; down.sh undoes exactly these.
MUNGED_OURS=$RUN/munged.ours        # PID of a munged that up.sh started
ETC_LINK_OURS=$RUN/etc-link.ours    # present when up.sh created the /etc/slurm/slurm.conf link

export SLURM_CONF=$CONF

say() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# alive PID NAME: PID runs (not a zombie) and is the program NAME.
alive() {
    local pid=$1 name=$2 state comm
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

# pid_from FILE: the PID recorded in FILE (empty if none).
pid_from() { if [[ -s $1 ]]; then tr -dc '0-9' <"$1"; fi; }

# alive_from FILE NAME: is the process whose PID FILE records (read now, at each call) alive?
# For wait_for: a daemon writes its PID file a moment after it forks.
alive_from() { alive "$(pid_from "$1")" "$2"; }

# stop_pid PID NAME: SIGTERM, wait up to 20 s, then SIGKILL. Only this one PID.
stop_pid() {
    local pid=$1 name=$2 i
    alive "$pid" "$name" || return 0
    say "stopping $name (PID $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" "$name" || return 0
        sleep 0.2
    done
    say "$name (PID $pid) ignored SIGTERM for 20 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    ! alive "$pid" "$name" || die "$name (PID $pid) is still running"
}

# wait_for SECONDS COMMAND...: retry COMMAND every 0.2 s until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
