#!/bin/sh
# Supervisor scenarios on cgroup v2: the real `mfserv` binary with nginx, its workers
# sandboxed and in their cgroups, driven as a user would drive it. Run by the /init of
# scripts/vm-test inside the VM (busybox sh, no Python: the workers are extra daemons running
# the static test programs or busybox sh), twice: at the root of the cgroup2 hierarchy, then
# as systemd would start a Delegate=yes service (mfserv.slice/mfserv.service holding the
# supervisor, MFSERV_CGROUP_DELEGATED=1), checking that nothing above mfserv.service changes.
#
# Environment: MFSERV (default /mfserv/bin/mfserv), PROGRAMS (folder of mfserv_test_hog,
# mfserv_test_forker, mfserv_test_double_forker; default /mfserv/bin).
# Output: one "PASS <scenario>" or "FAIL <scenario>: <why>" line per scenario.
# Exit: 0 when every scenario passed, else 1.

mfserv=${MFSERV:-/mfserv/bin/mfserv}
programs=${PROGRAMS:-/mfserv/bin}
cg=/sys/fs/cgroup
failed=0
why=""

fail() { why="${why:+$why; }$*"; }

scenario() {
  name=$1
  shift
  why=""
  "$@"
  if [ -z "$why" ]; then
    echo "PASS $name"
  else
    echo "FAIL $name: $why"
    failed=1
  fi
}

# Polls CONDITION (a command) every 0.2 s for up to SECONDS.
wait_for() {
  limit=$(($1 * 5))
  shift
  i=0
  while ! "$@"; do
    i=$((i + 1))
    [ $i -ge $limit ] && return 1
    sleep 0.2
  done
}

# One line per process of `mfserv ps --json` (keys are sorted, one per line, by dump(2)):
# kind plugin app worker pid state last_exit cgroup memory_limit worker_memory_limit
ps_rows() {
  "$mfserv" --home "$1" ps --json | awk '
    /^ *"[a-z_]+": / {
      key = $1; gsub(/[":]/, "", key)
      value = $0; sub(/^ *"[a-z_]+": /, "", value); sub(/,$/, "", value); gsub(/"/, "", value)
      row[key] = value
    }
    /^ *},?$/ {
      if ("kind" in row) {
        print row["kind"], (row["plugin"] == "" ? "-" : row["plugin"]), row["app"], \
          row["worker"], row["pid"], row["state"], \
          (row["last_exit"] == "" ? "-" : row["last_exit"]), row["cgroup"], \
          row["memory_limit"], row["worker_memory_limit"]
      }
      split("", row)
    }'
}

# The row of PLUGIN APP WORKER.
ps_row() { ps_rows "$1" | awk -v p="$2" -v a="$3" -v w="$4" '$2 == p && $3 == a && $4 == w'; }

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
gone() { ! alive "$1"; }

# Every pid in the cgroup directory DIR and below.
subtree_pids() { find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u; }

# A home with three plugins:
#   work: two forkers (a process tree each), a double-forker (a setsid'd daemon that leaves
#         its parent) and busybox sh, memory_max on the app, worker_memory_max on the shell;
#   hog:  allocates 128M under a 32M memory_max, 2 s after it started (so that `run --detach`
#         sees it start): killed by the kernel, reported as oom;
#   site: a static app (numprocesses = 0) served by nginx.
make_home() {
  home=$1
  mkdir -p "$home/plugins/work" "$home/plugins/hog" "$home/plugins/site/main"
  general='[general]
_version = 1.0.0
_release = 1
_summary = vm scenario
_license = MIT
_url = https://example.invalid
_maintainer = tests
_vendor = tests
'
  cat >"$home/plugins/work/config.ini" <<EOF
$general
[extra_daemon_tree]
_cmd_and_args = $programs/mfserv_test_forker 2
numprocesses = 2
memory_max = 48M
pids_max = 32
graceful_timeout = 2

[extra_daemon_daemon]
_cmd_and_args = $programs/mfserv_test_double_forker
graceful_timeout = 2

[extra_daemon_shell]
_cmd_and_args = /bin/sh -c 'while true; do sleep 1; done'
worker_memory_max = 24M
graceful_timeout = 2
EOF
  cat >"$home/plugins/hog/config.ini" <<EOF
$general
[extra_daemon_hog]
_cmd_and_args = /bin/sh -c 'sleep 2; exec $programs/mfserv_test_hog 128 4'
memory_max = 32M
graceful_timeout = 2
EOF
  cat >"$home/plugins/site/config.ini" <<EOF
$general
[app_main]
numprocesses = 0
_static_url_prefix =
_static_directory =
EOF
  echo "static page from the vm" >"$home/plugins/site/main/index.html"
}

# `run --detach` of $home on $port, through PREFIX... (a command that starts it: the
# delegated shape). Sets $supervisor (its pid) and $instance_dir (its cgroup subtree).
start_home() {
  output=$("$@" "$mfserv" --home "$home" run --detach --port "$port" 2>&1)
  status=$?
  supervisor=$(echo "$output" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
  if [ $status -ne 0 ] || [ -z "$supervisor" ]; then
    fail "run --detach exited $status: $output"
    [ -f "$home/log/mfserv.log" ] && tail -n 20 "$home/log/mfserv.log"
    return
  fi
  set -- $(ps_row "$home" work tree 1)
  instance_dir=$cg$(dirname "$(dirname "$(dirname "$8")")")
  case "$instance_dir" in
    "$cg$base"/mfserv/?*) ;;
    *) fail "the instance's cgroup: '$instance_dir'" ;;
  esac
}

# --- the scenarios; $home, $port, $base ("" or /mfserv.slice/mfserv.service) are set -------

check_running() {
  rows=$(ps_rows "$home")
  expected="tree:1 tree:2 daemon:1 shell:1"
  for entry in $expected; do
    app=${entry%%:*}
    worker=${entry##*:}
    row=$(ps_row "$home" work "$app" "$worker")
    set -- $row
    [ "$6" = running ] || fail "work/$app w$worker is not running: '$row'"
  done
  [ -n "$(echo "$rows" | awk '$1 == "nginx" && $6 == "running"')" ] || fail "nginx not running: $rows"
  health=$(wget -q -O - "http://127.0.0.1:$port/__health" 2>&1) || fail "/__health: $health"
  page=$(wget -q -O - "http://127.0.0.1:$port/site/index.html" 2>&1)
  [ "$page" = "static page from the vm" ] || fail "static page through nginx: '$page'"
}

leaf_holds() { [ "$(wc -l <"$1/cgroup.procs")" -ge "$2" ]; }

check_leaves() {
  rows=$(ps_rows "$home")
  echo "$rows" | while read -r kind plugin app worker pid state last cgroup rest; do
    [ "$kind" = daemon ] || continue
    [ "$plugin" = hog ] && continue  # restarted by the OOM scenario at any moment
    actual=$(cat "/proc/$pid/cgroup" 2>/dev/null)
    case "$cgroup" in
      "$base"/mfserv/*/"$plugin/extra_daemon_$app/w$worker") ;;
      *) echo "cgroup of $plugin/$app w$worker in ps: $cgroup" ;;
    esac
    [ "$actual" = "0::$cgroup" ] || echo "/proc/$pid/cgroup of $plugin/$app w$worker: '$actual', ps says $cgroup"
    grep -qx "$pid" "$cg$cgroup/cgroup.procs" || echo "$pid not in $cg$cgroup/cgroup.procs"
  done >/tmp/leaves.err
  [ -s /tmp/leaves.err ] && fail "$(cat /tmp/leaves.err)"
  n=$(echo "$rows" | awk '$1 == "daemon" && $2 == "work"' | wc -l)
  [ "$n" -eq 4 ] || fail "ps lists $n workers of work, expected 4"
  # The tree of each forker (the sandbox's init, the program, its 2 children) and the
  # double-forker's escaped grandchild stay in their leaf.
  set -- $(ps_row "$home" work tree 1)
  wait_for 20 leaf_holds "$cg$8" 4 ||
    fail "work/extra_daemon_tree w1: $(wc -l <"$cg$8/cgroup.procs") processes in its leaf, expected 4"
  set -- $(ps_row "$home" work daemon 1)
  wait_for 20 leaf_holds "$cg$8" 3 ||
    fail "the double-forker's leaf: $(wc -l <"$cg$8/cgroup.procs") processes, expected 3 (init, program, grandchild)"
  set -- $(echo "$rows" | awk '$1 == "nginx"')
  case "$8" in
    "$base"/mfserv/*/__nginx*) ;;
    *) fail "nginx's cgroup: '$8'" ;;
  esac
  # No process in an inner cgroup ("no internal processes"): only leaves hold them.
  for dir in $(find "$instance_dir" -type d); do
    if [ -n "$(ls "$dir" | grep -v '\.' )" ] && [ -s "$dir/cgroup.procs" ]; then
      fail "inner cgroup $dir holds processes"
    fi
  done
}

check_limits() {
  set -- $(ps_row "$home" work tree 1)
  app_dir=$cg$(dirname "$8")
  [ "$(cat "$app_dir/memory.max")" = $((48 * 1024 * 1024)) ] ||
    fail "$app_dir/memory.max is $(cat "$app_dir/memory.max"), expected 48M"
  [ "$9" = $((48 * 1024 * 1024)) ] || fail "ps memory_limit of work/extra_daemon_tree: $9"
  [ "$(cat "$app_dir/pids.max")" = 32 ] || fail "$app_dir/pids.max is $(cat "$app_dir/pids.max")"
  if [ -e "$app_dir/memory.swap.max" ]; then
    [ "$(cat "$app_dir/memory.swap.max")" = 0 ] ||
      fail "$app_dir/memory.swap.max is $(cat "$app_dir/memory.swap.max")"
  fi
  set -- $(ps_row "$home" work shell 1)
  [ "$(cat "$cg$8/memory.max")" = $((24 * 1024 * 1024)) ] ||
    fail "$cg$8/memory.max (worker_memory_max) is $(cat "$cg$8/memory.max")"
  [ "${10}" = $((24 * 1024 * 1024)) ] || fail "ps worker_memory_limit of work/extra_daemon_shell: ${10}"
}

hog_reported_oom() {
  set -- $(ps_row "$home" hog hog 1)
  [ "$7" = oom ]
}

check_oom() {
  if ! wait_for 60 hog_reported_oom; then
    fail "hog/extra_daemon_hog not reported as oom: '$(ps_row "$home" hog hog 1)'"
    return
  fi
  set -- $(ps_row "$home" hog hog 1)
  kills=$(awk '$1 == "oom_kill" { print $2 }' "$cg$(dirname "$8")/memory.events")
  [ "${kills:-0}" -ge 1 ] || fail "memory.events oom_kill of hog's app: '$kills'"
  grep -q 'oom' "$home/log/mfserv.log" || fail "no oom in mfserv.log"
  # Its neighbours kept running.
  set -- $(ps_row "$home" work shell 1)
  [ "$6" = running ] || fail "work/extra_daemon_shell: $6 after the hog's OOM"
}

check_stop() {
  pids="$supervisor $(subtree_pids "$instance_dir")"
  output=$("$mfserv" --home "$home" stop 2>&1) || fail "stop: $output"
  for pid in $pids; do
    wait_for 10 gone "$pid" || fail "pid $pid ($(cat /proc/$pid/comm 2>/dev/null)) survived stop"
  done
  [ -e "$instance_dir" ] && fail "left behind: $(find "$instance_dir" -type d | tr '\n' ' ')"
  [ -e "$cg$base/mfserv" ] && fail "left behind: $cg$base/mfserv"
  left=$(ps -o pid,comm | awk '$2 ~ /nginx|mfserv_test|mfserv/ { print }')
  [ -n "$left" ] && fail "processes left: $left"
}

# `mfserv check --json` through PREFIX...: v2, the delegation as expected, nothing missing
# (the port is held by this home's running supervisor).
check_check() {
  out=$("$@" "$mfserv" --home "$home" check --json --port "$port" 2>&1)
  status=$?
  [ $status -eq 0 ] || fail "check exited $status: $(echo "$out" | sed -n '/"missing": \[$/,/\]/p')"
  echo "$out" | grep -q '"layout": "v2"' || fail "check: layout is not v2"
  echo "$out" | grep -q '"memory"' || fail "check: no memory controller"
  if [ -n "$base" ]; then
    echo "$out" | grep -q '"delegated": true' || fail "check: not delegated"
    echo "$out" | grep -q "\"base\": \"$base\"" || fail "check: base is not $base"
  else
    echo "$out" | grep -q '"delegated": false' || fail "check: delegated at the root"
  fi
  echo "$out" | grep -q "in use by this home's running mfserv" || fail "check: port $port not seen as ours"
}

# --- delegated shape ----------------------------------------------------------------------

slice=$cg/mfserv.slice
service=$slice/mfserv.service

snapshot() {
  echo "root subtree_control: $(cat $cg/cgroup.subtree_control)"
  echo "root: $(ls $cg | tr '\n' ' ')"
  echo "slice subtree_control: $(cat $slice/cgroup.subtree_control)"
  echo "slice: $(ls $slice | tr '\n' ' ')"
  echo "slice memory.max: $(cat $slice/memory.max) pids.max: $(cat $slice/pids.max)"
  echo "service memory.max: $(cat $service/memory.max) pids.max: $(cat $service/pids.max)"
}

check_supervisor_leaf() {
  actual=$(cat "/proc/$supervisor/cgroup")
  [ "$actual" = "0::/mfserv.slice/mfserv.service/supervisor" ] ||
    fail "supervisor $supervisor is in '$actual', expected its leaf <service>/supervisor"
  [ -s "$service/cgroup.procs" ] && fail "$service itself holds processes: $(cat $service/cgroup.procs)"
  for controller in memory pids; do
    grep -qw $controller "$service/cgroup.subtree_control" ||
      fail "$controller not enabled below the service: $(cat $service/cgroup.subtree_control)"
  done
}

check_nothing_above() {
  after=$(snapshot)
  [ "$before" = "$after" ] || fail "changed above mfserv.service: before [$before] after [$after]"
}

# --- main ---------------------------------------------------------------------------------

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

echo "== vm: mfserv supervisor at the cgroup2 root"
home=/tmp/home-root
port=8081
base=""
make_home "$home"
scenario "v2 root: run --detach returns with every worker started" start_home
if [ -z "$why" ]; then
  scenario "v2 root: run --detach starts nginx and every worker" check_running
  scenario "v2 root: each worker in its own leaf (/proc/PID/cgroup = ps cgroup)" check_leaves
  scenario "v2 root: memory_max, worker_memory_max, pids_max, swap 0 in the kernel files" check_limits
  scenario "v2 root: a memory hog is OOM-killed and reported as oom" check_oom
  scenario "v2 root: mfserv check reports v2, no delegation, nothing missing" check_check
  scenario "v2 root: stop leaves no process and no cgroup" check_stop
else
  "$mfserv" --home "$home" stop >/dev/null 2>&1
fi

echo "== vm: mfserv supervisor in a delegated mfserv.slice/mfserv.service"
# What systemd sets up for a Delegate=yes service in its slice: controllers enabled down to
# the slice, a fresh service cgroup (the cgroup suite may have used the same names).
echo "+memory +pids" >"$cg/cgroup.subtree_control"
if [ -d "$slice" ]; then
  find "$slice" -depth -mindepth 1 -type d -exec rmdir {} \;
fi
mkdir -p "$service"
echo "+memory +pids" >"$slice/cgroup.subtree_control"
home=/tmp/home-delegated
port=8082
base=/mfserv.slice/mfserv.service
make_home "$home"
before=$(snapshot)
# As systemd starts the service: its main process in the service's cgroup.
in_service() {
  sh -c 'echo $$ >'"$service"'/cgroup.procs && exec env MFSERV_CGROUP_DELEGATED=1 "$@"' sh "$@"
}
# A process of the service started later (`mfserv check`): in the supervisor's leaf.
in_leaf() {
  sh -c 'echo $$ >'"$service"'/supervisor/cgroup.procs && exec env MFSERV_CGROUP_DELEGATED=1 "$@"' \
    sh "$@"
}
scenario "delegated: run --detach returns with every worker started" start_home in_service
if [ -z "$why" ]; then
  scenario "delegated: the supervisor moved itself into <service>/supervisor" check_supervisor_leaf
  scenario "delegated: run --detach starts nginx and every worker" check_running
  scenario "delegated: workers in leaves under <service>/mfserv/" check_leaves
  scenario "delegated: limits in the kernel files" check_limits
  scenario "delegated: a memory hog is OOM-killed and reported as oom" check_oom
  scenario "delegated: mfserv check in <service>/supervisor reports the delegation" \
    check_check in_leaf
  scenario "delegated: stop leaves no process and no cgroup" check_stop
  scenario "delegated: nothing above mfserv.service changed" check_nothing_above
else
  "$mfserv" --home "$home" stop >/dev/null 2>&1
fi
exit $failed
