#!/usr/bin/env bash
# slurm-up.sh - bring a Debian 12 (bookworm) machine, as root and WITHOUT systemd,
# to a running single-node Slurm cluster on localhost:
#   munged + slurmctld + slurmd, and (if feasible) MariaDB + slurmdbd for sacct.
#
# orion's development/CI cluster (used by `pytest -m slurm`); stop it with scripts/slurm-down.sh.
# A MySQL-compatible server already answering on 127.0.0.1:3306 is reused for slurmdbd (no
# second server is installed or started, and slurm-down.sh leaves it running).
#
# Idempotent: every step checks first and only installs / writes / starts what is
# missing or different.  Re-running it on a running cluster is a no-op (it only
# restarts daemons whose config file actually changed).
#
# Knobs (environment variables):
#   SLURM_ACCOUNTING  auto|slurmdbd|none  (default auto: try MariaDB+slurmdbd,
#                     fall back to "none" = jobcomp/filetxt + `sacct -c` only)
#   SLURM_CLUSTER     cluster name                      (default orion)
#   SLURM_REALMEM_MB  RealMemory of the node in MB      (default 2000, capped at detected)
#   SLURM_UP_TIMEOUT  seconds to wait for each daemon   (default 60)
#   SLURM_UP_SMOKE    1 = submit a test job at the end and check squeue/sacct (default 0)
#   SLURM_WITH_DEV    1 = also install libslurm-dev (headers for pyslurm)  (default 0)
#   SLURM_DB_PASS     password for the MariaDB 'slurm' user (default: random on first
#                     run, then reused from /etc/slurm/slurmdbd.conf)
#
# Files: /etc/slurm/slurm.conf, /etc/slurm/slurmdbd.conf, logs in /var/log/slurm,
# pid files in /run/slurm, state in /var/spool/slurmctld and /var/spool/slurmd,
# /run/orion-slurm/ holds markers for daemons this script started (used by slurm-down.sh)
# and /run/orion-slurm/cluster.env (ORION_SLURM_ACCOUNTING=slurmdbd|none ...).
set -euo pipefail

SLURM_ACCOUNTING=${SLURM_ACCOUNTING:-auto}
SLURM_CLUSTER=${SLURM_CLUSTER:-orion}
SLURM_REALMEM_MB=${SLURM_REALMEM_MB:-2000}
SLURM_UP_TIMEOUT=${SLURM_UP_TIMEOUT:-60}
SLURM_UP_SMOKE=${SLURM_UP_SMOKE:-0}
SLURM_WITH_DEV=${SLURM_WITH_DEV:-0}
APT_OPTS=(-o DPkg::Lock::Timeout=900 -y --no-install-recommends)
MARK=/run/orion-slurm
export DEBIAN_FRONTEND=noninteractive

T_START=$(date +%s%N)
log() { printf '[slurm-up %6.2fs] %s\n' "$(( ($(date +%s%N) - T_START) / 10000000 ))e-2" "$*"; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
case "$SLURM_ACCOUNTING" in auto|slurmdbd|none) ;; *) die "SLURM_ACCOUNTING must be auto|slurmdbd|none";; esac
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  log "WARNING: PID 1 is systemd; this script starts daemons by hand and was only tested without systemd."
fi

# ---------- helpers ----------------------------------------------------------
# pid_of PIDFILE COMM -> prints pid if the pidfile names a live process with that comm
pid_of() {
  local pf=$1 comm=$2 pid
  [ -r "$pf" ] || return 1
  read -r pid < "$pf" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$comm" ] || return 1
  echo "$pid"
}
wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
  log "$what: ok"
}
pkgs_missing() { # prints the packages of "$@" that are not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
install_pkgs() {
  local missing
  missing=$(pkgs_missing "$@" | tr '\n' ' ')
  [ -z "${missing// /}" ] && { log "packages already installed: $*"; return 0; }
  log "installing: $missing"
  local t0=$(date +%s)
  if ! apt-get "${APT_OPTS[@]}" install $missing >/tmp/slurm-up-apt.log 2>&1; then
    log "apt-get install failed, running apt-get update and retrying"
    apt-get -o DPkg::Lock::Timeout=900 update >>/tmp/slurm-up-apt.log 2>&1
    apt-get "${APT_OPTS[@]}" install $missing >>/tmp/slurm-up-apt.log 2>&1 \
      || { tail -20 /tmp/slurm-up-apt.log; die "apt-get install $missing failed (log: /tmp/slurm-up-apt.log)"; }
  fi
  log "installed in $(( $(date +%s) - t0 ))s ($(grep -E '^(Need to get|Fetched)' /tmp/slurm-up-apt.log | tail -1))"
}
# write_if_changed PATH MODE OWNER  (content on stdin); returns 0 if the file changed
write_if_changed() {
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"; chmod "$mode" "$path"; chown "$owner" "$path"; return 1
  fi
  install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"; rm -f "$tmp"
  log "wrote $path"
  return 0
}
stop_pid() { # stop_pid PID  (TERM, wait up to 20s, then KILL)
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do [ -d /proc/"$pid" ] || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
mysql_root() { # run the mariadb client as DB root: unix socket first, then TCP root/no password
  if mariadb --protocol=socket -u root -e 'select 1' >/dev/null 2>&1; then
    mariadb --protocol=socket -u root "$@"
  else
    mariadb -h 127.0.0.1 -P 3306 -u root "$@"
  fi
}
db_alive() {
  mariadb-admin --protocol=socket -u root ping >/dev/null 2>&1 || \
  mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 || \
  (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null
}

mkdir -p "$MARK"

# ---------- 1. packages --------------------------------------------------------
PKGS=(munge slurm-wlm slurmctld slurmd slurm-client)
[ "$SLURM_WITH_DEV" = 1 ] && PKGS+=(libslurm-dev)
if [ "$SLURM_ACCOUNTING" != none ]; then
  PKGS+=(slurmdbd)
  # only install mariadb-server if no MySQL-compatible server answers on 127.0.0.1:3306
  if ! db_alive; then PKGS+=(mariadb-server mariadb-client); else PKGS+=(mariadb-client); fi
fi
if [ -n "$(pkgs_missing "${PKGS[@]}")" ] && [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -m1 '_Packages')" ]; then
  log "apt package lists missing -> apt-get update"
  apt-get -o DPkg::Lock::Timeout=900 update >/tmp/slurm-up-apt-update.log 2>&1 || die "apt-get update failed"
fi
if ! install_pkgs "${PKGS[@]}"; then die "package install failed"; fi
SLURM_VERSION=$(slurmctld -V | awk '{print $2}')
log "Slurm version $SLURM_VERSION"

# ---------- 2. host facts -------------------------------------------------------
H=$(hostname -s)
NCPU=$(nproc)
# socket/core layout as slurmd sees it (avoids 'Node reconfigured socket/core boundaries')
read -r SOCK CORES THREADS DETMEM < <(slurmd -C 2>/dev/null | head -1 | \
  sed -E 's/.*SocketsPerBoard=([0-9]+).*CoresPerSocket=([0-9]+).*ThreadsPerCore=([0-9]+).*RealMemory=([0-9]+).*/\1 \2 \3 \4/') || true
[[ "${SOCK:-}" =~ ^[0-9]+$ ]] || { SOCK=1; CORES=$NCPU; THREADS=1; DETMEM=$SLURM_REALMEM_MB; }
REALMEM=$SLURM_REALMEM_MB; [ "$DETMEM" -lt "$REALMEM" ] && REALMEM=$DETMEM
log "node $H: CPUs=$NCPU Sockets=$SOCK CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$REALMEM (detected $DETMEM)"

# ---------- 3. directories ------------------------------------------------------
install -d -o slurm -g slurm -m 0755 /run/slurm /var/spool/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd
install -d -o munge -g munge -m 0755 /run/munge

# ---------- 4. munge ------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  install -d -o munge -g munge -m 0700 /etc/munge
  if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
if pid=$(pid_of /run/munge/munged.pid munged); then
  log "munged already running (pid $pid)"
else
  runuser -u munge -- /usr/sbin/munged
  pid=$(pid_of /run/munge/munged.pid munged) || die "munged did not start (see /var/log/munge/munged.log)"
  echo "$pid" > "$MARK/munged.pid"
  log "started munged (pid $pid)"
fi
wait_for 10 "munge round-trip" bash -c 'munge -n | unmunge' || die "munge -n | unmunge failed"

# ---------- 5. accounting: MariaDB + slurmdbd ------------------------------------
ACCT=none
DBD_CHANGED=0
if [ "$SLURM_ACCOUNTING" != none ]; then
  acct_fail() {
    if [ "$SLURM_ACCOUNTING" = slurmdbd ]; then die "$*"; fi
    log "WARNING: $* -> falling back to SLURM_ACCOUNTING=none"; return 1
  }
  setup_acct() {
    if ! db_alive; then
      [ -x /usr/sbin/mariadbd ] || { acct_fail "no database server and mariadbd not installed"; return 1; }
      install -d -o mysql -g mysql -m 0755 /run/mysqld
      if [ ! -d /var/lib/mysql/mysql ]; then
        log "initialising MariaDB datadir"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/tmp/slurm-up-mariadb-install.log 2>&1 \
          || { acct_fail "mariadb-install-db failed"; return 1; }
      fi
      setsid nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
        </dev/null >>/var/log/slurm/mariadbd.log 2>&1 &
      wait_for "$SLURM_UP_TIMEOUT" "MariaDB ping" db_alive || { acct_fail "MariaDB did not come up (log /var/log/slurm/mariadbd.log)"; return 1; }
      local mpid
      mpid=$(pid_of /run/mysqld/mysqld.pid mariadbd) || { acct_fail "mariadbd pid file missing"; return 1; }
      echo "$mpid" > "$MARK/mariadbd.pid"
      log "started mariadbd (pid $mpid)"
    else
      log "database server already answering"
    fi
    local pass
    if [ -n "${SLURM_DB_PASS:-}" ]; then pass=$SLURM_DB_PASS
    elif [ -r /etc/slurm/slurmdbd.conf ] && grep -q '^StoragePass=' /etc/slurm/slurmdbd.conf; then
      pass=$(sed -n 's/^StoragePass=//p' /etc/slurm/slurmdbd.conf | head -1)
    else
      pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
    fi
    mysql_root -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
                   ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
                   CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
                   ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
                   GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
                   GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
                   FLUSH PRIVILEGES;" 2>/tmp/slurm-up-mysql.err \
      || { acct_fail "cannot create DB user: $(cat /tmp/slurm-up-mysql.err)"; return 1; }
    if write_if_changed /etc/slurm/slurmdbd.conf 0600 slurm:slurm <<EOF
# generated by slurm-up.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
    then DBD_CHANGED=1; fi
    ACCT=slurmdbd
  }
  setup_acct || ACCT=none
fi

# ---------- 6. slurm.conf --------------------------------------------------------
if [ "$ACCT" = slurmdbd ]; then
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi
CONF_CHANGED=0
if write_if_changed /etc/slurm/slurm.conf 0644 root:root <<EOF
# generated by slurm-up.sh - single node, no systemd, no cgroups
ClusterName=${SLURM_CLUSTER}
SlurmctldHost=${H}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=300
MaxJobCount=20000
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
${ACCT_LINES}
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
NodeName=${H} NodeAddr=127.0.0.1 NodeHostname=${H} CPUs=${NCPU} Boards=1 SocketsPerBoard=${SOCK} CoresPerSocket=${CORES} ThreadsPerCore=${THREADS} RealMemory=${REALMEM} State=UNKNOWN
PartitionName=debug Nodes=${H} Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=${H} Default=NO MaxTime=INFINITE State=UP
EOF
then CONF_CHANGED=1; fi

# ---------- 7. daemons ---------------------------------------------------------
if [ "$ACCT" = slurmdbd ]; then
  if pid=$(pid_of /run/slurm/slurmdbd.pid slurmdbd) && [ "$DBD_CHANGED" = 1 ]; then
    log "slurmdbd.conf changed -> restarting slurmdbd (pid $pid)"; stop_pid "$pid"
  fi
  if pid=$(pid_of /run/slurm/slurmdbd.pid slurmdbd); then
    log "slurmdbd already running (pid $pid)"
  else
    if ! /usr/sbin/slurmdbd; then
      [ "$SLURM_ACCOUNTING" = slurmdbd ] && die "slurmdbd failed to start: $(tail -5 /var/log/slurm/slurmdbd.log)"
    fi
    sleep 0.2
    if pid=$(pid_of /run/slurm/slurmdbd.pid slurmdbd); then
      echo "$pid" > "$MARK/slurmdbd.pid"; log "started slurmdbd (pid $pid)"
    fi
  fi
  # slurmdbd answers once it listens on 6819 (schema creation happens before that)
  if ! wait_for "$SLURM_UP_TIMEOUT" "slurmdbd listening on 6819" bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'; then
    tail -5 /var/log/slurm/slurmdbd.log || true
    [ "$SLURM_ACCOUNTING" = slurmdbd ] && die "slurmdbd not answering"
    log "WARNING: slurmdbd not answering -> rewriting slurm.conf without accounting"
    ACCT=none
    sed -i 's#^AccountingStorageType=.*#AccountingStorageType=accounting_storage/none#; /^AccountingStorageHost=/d; /^AccountingStoragePort=/d' /etc/slurm/slurm.conf
    CONF_CHANGED=1
  fi
fi

if [ "$CONF_CHANGED" = 1 ]; then
  for d in slurmd slurmctld; do
    if pid=$(pid_of /run/slurm/$d.pid $d); then log "slurm.conf changed -> restarting $d (pid $pid)"; stop_pid "$pid"; fi
  done
fi
if pid=$(pid_of /run/slurm/slurmctld.pid slurmctld); then
  log "slurmctld already running (pid $pid)"
else
  /usr/sbin/slurmctld || die "slurmctld failed to start: $(tail -5 /var/log/slurm/slurmctld.log)"
  wait_for "$SLURM_UP_TIMEOUT" "scontrol ping" bash -c 'scontrol ping | grep -q UP' \
    || die "slurmctld not answering: $(tail -5 /var/log/slurm/slurmctld.log)"
  pid=$(pid_of /run/slurm/slurmctld.pid slurmctld); echo "$pid" > "$MARK/slurmctld.pid"
  log "started slurmctld (pid $pid)"
fi
if pid=$(pid_of /run/slurm/slurmd.pid slurmd); then
  log "slurmd already running (pid $pid)"
else
  /usr/sbin/slurmd || die "slurmd failed to start: $(tail -5 /var/log/slurm/slurmd.log)"
  sleep 0.2
  pid=$(pid_of /run/slurm/slurmd.pid slurmd) || die "slurmd exited: $(tail -5 /var/log/slurm/slurmd.log)"
  echo "$pid" > "$MARK/slurmd.pid"; log "started slurmd (pid $pid)"
fi

# node must be idle (or busy with jobs: mixed/allocated) - resume it if it came back down/drained
node_ready() { case "$(sinfo -h -n "$H" -o %T 2>/dev/null | head -1)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac; }
if ! wait_for "$SLURM_UP_TIMEOUT" "node $H ready" node_ready; then
  st=$(sinfo -h -n "$H" -o '%T %E' | head -1)
  log "node state '$st' -> scontrol update state=resume"
  scontrol update nodename="$H" state=resume || true
  wait_for 30 "node $H ready after resume" node_ready || die "node $H not usable: $(sinfo -N -l)"
fi

cat > "$MARK/cluster.env" <<EOF
ORION_SLURM_CLUSTER=$SLURM_CLUSTER
ORION_SLURM_NODE=$H
ORION_SLURM_VERSION=$SLURM_VERSION
ORION_SLURM_ACCOUNTING=$ACCT
EOF

# ---------- 8. optional smoke test -------------------------------------------
if [ "$SLURM_UP_SMOKE" = 1 ]; then
  d=$(mktemp -d)
  jid=$(sbatch --parsable -o "$d/out" -t 1 -D "$d" --wrap 'echo smoke-ok') || die "sbatch failed"
  wait_for 60 "smoke job $jid finished" bash -c "[ \"\$(squeue -h -t all -j $jid -o %T)\" = COMPLETED ]" \
    || die "smoke job $jid state: $(squeue -h -t all -j "$jid" -o '%T %r')"
  grep -q smoke-ok "$d/out" || die "smoke job output missing"
  if [ "$ACCT" = slurmdbd ]; then
    wait_for 30 "sacct sees job $jid COMPLETED" bash -c "sacct -n -X -P -o State -j $jid | grep -q COMPLETED" \
      || die "sacct does not show job $jid"
  fi
  rm -rf "$d"
fi

sinfo
log "cluster up: Slurm $SLURM_VERSION, node $H, accounting=$ACCT (took $(( ($(date +%s%N) - T_START) / 1000000 )) ms)"
