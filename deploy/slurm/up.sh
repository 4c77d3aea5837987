#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on loopback (127.0.0.1) for deploy tests.
#
#   sudo bash deploy/slurm/up.sh        # then: sinfo; LOCALSHARP_SLURM=1 pytest tests/test_deploy_slurm.py
#   sudo bash deploy/slurm/down.sh      # stops exactly what this script started
#
# Installs the Debian packages if missing (slurmctld slurmd slurm-client munge), starts munged
# unless a working one runs already, writes $PREFIX/etc/slurm.conf from slurm.conf.in with the
# hardware that `slurmd -C` reports, starts slurmctld and slurmd by hand (no systemd needed),
# and waits until the node is idle and a test job runs. Running it again while the cluster is
# up changes nothing. Settings: see common.sh (LOCALSHARP_SLURM_PREFIX, ports, partition).
# Needs root: the daemons run as root (SlurmUser=root) and munged as user munge.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (the loopback cluster's daemons run as root)"

# ------------------------------------------------------------------ packages
install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install SLURM and munge yourself"
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------------ munge
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        local ours
        ours=$(pid_from "$MUNGED_OURS")
        if alive "$ours" munged; then
            say "munged: already running (PID $ours, started by up.sh)"
        else
            rm -f "$MUNGED_OURS"
            say "munged: already running (not started by up.sh; down.sh will leave it alone)"
        fi
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "munged: creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 600 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    say "munged: starting"
    # --force: remove a stale socket left by a munged that is no longer running
    runuser -u munge -- /usr/sbin/munged --force
    wait_for 10 munge_works || die "munged did not come up (see /var/log/munge/munged.log)"
    local pid
    pid=$(pid_from /run/munge/munged.pid)
    alive "$pid" munged || die "munged works but /run/munge/munged.pid does not name it"
    echo "$pid" >"$MUNGED_OURS"
    say "munged: running (PID $pid)"
}

# ------------------------------------------------------------------ slurm.conf
hw() {  # hw KEY: value of KEY=... in `slurmd -C`
    local v
    v=$(slurmd -C | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1)
    [[ -n $v ]] || die "slurmd -C reports no $1"
    echo "$v"
}

write_conf() {
    local cpus real mem def_mem
    cpus=$(hw CPUs)
    real=$(hw RealMemory)
    mem=$((real * 9 / 10))         # leave 10 %: above slurmd -C's value the node is drained
    def_mem=$((mem / cpus < 1024 ? mem / cpus : 1024))
    mkdir -p "$PREFIX/etc"
    sed -e "s|@PREFIX@|$PREFIX|g" \
        -e "s|@SLURMCTLD_PORT@|$SLURMCTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@PARTITION@|$PARTITION|g" \
        -e "s|@CPUS@|$cpus|g" -e "s|@BOARDS@|$(hw Boards)|g" \
        -e "s|@SOCKETS_PER_BOARD@|$(hw SocketsPerBoard)|g" \
        -e "s|@CORES_PER_SOCKET@|$(hw CoresPerSocket)|g" \
        -e "s|@THREADS_PER_CORE@|$(hw ThreadsPerCore)|g" \
        -e "s|@REAL_MEMORY@|$mem|g" -e "s|@DEF_MEM_PER_CPU@|$def_mem|g" \
        "$HERE/slurm.conf.in" >"$CONF.tmp"
    ! grep -n '@[A-Z_]*@' "$CONF.tmp" || die "unreplaced placeholders in $CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    printf 'export SLURM_CONF=%q\n' "$CONF" >"$PREFIX/etc/env.sh"
    say "wrote $CONF (node: $cpus CPUs, RealMemory=$mem MB of $real)"
}

link_etc_conf() {
    [[ $LINK_ETC == 1 ]] || return 0
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
        return 0
    fi
    if [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
        say "NOTE: $ETC_CONF exists and is not ours; left as is. Before using sinfo/sbatch run:"
        say "      source $PREFIX/etc/env.sh"
        return 0
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$CONF" "$ETC_CONF"
    touch "$ETC_LINK_OURS"
    say "linked $ETC_CONF -> $CONF (removed by down.sh)"
}

# ------------------------------------------------------------------ daemons
node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -n1; }
node_ready() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

start_slurm() {
    local ctld slurmd started=0
    ctld=$(pid_from "$RUN/slurmctld.pid")
    slurmd=$(pid_from "$RUN/slurmd.pid")
    if alive "$ctld" slurmctld && alive "$slurmd" slurmd; then
        say "slurmctld (PID $ctld) and slurmd (PID $slurmd) already running"
    else
        if ! alive "$ctld" slurmctld; then
            write_conf
            say "slurmctld: starting (clean state)"
            slurmctld -f "$CONF" -c || die "slurmctld failed; see $PREFIX/log/slurmctld.log"
            started=1
        fi
        if ! alive "$slurmd" slurmd; then
            say "slurmd: starting"
            slurmd -f "$CONF" -N localhost || die "slurmd failed; see $PREFIX/log/slurmd.log"
            started=1
        fi
        wait_for 10 alive_from "$RUN/slurmctld.pid" slurmctld \
            || { tail -n 20 "$PREFIX/log/slurmctld.log" >&2 || true; die "slurmctld is not running"; }
        wait_for 10 alive_from "$RUN/slurmd.pid" slurmd \
            || { tail -n 20 "$PREFIX/log/slurmd.log" >&2 || true; die "slurmd is not running"; }
    fi
    link_etc_conf

    say "waiting for node localhost to be idle"
    if ! wait_for 60 node_ready; then
        tail -n 20 "$PREFIX/log/slurmctld.log" "$PREFIX/log/slurmd.log" >&2 || true
        die "node localhost is '$(node_state)' after 60 s, not idle (logs above)"
    fi
    if ((started)); then
        say "test job: srun -n1 -t1 --mem=64M /bin/true"
        timeout 90 srun -n1 -t1 --mem=64M -J localsharp-up-check /bin/true \
            || die "the test job did not run; see $PREFIX/log/"
    fi
}

mkdir -p "$PREFIX"/{etc,state/ctld,state/d,run,log}
install_packages
start_munge
start_slurm
say "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T' | head -n1)"
say "config: $CONF   logs: $PREFIX/log/   stop with: bash $HERE/down.sh"
