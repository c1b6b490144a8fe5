#!/usr/bin/python3
"""Supervision benchmark (issue 5): mfserv vs supervisord managing the same gunicorn workers.

N plugins x 1 app x 2 workers of a tiny WSGI app on gunicorn ("ok"), first under mfserv, then
the same 2N processes under Debian's supervisord. Measured for each: time from launch to ready,
supervisor RSS, CPU and wakeups at idle, restart latency after kill -9 of one worker. While
mfserv runs: wrk through mfserv's nginx vs two hand-written nginx.conf in front of the same two
gunicorn sockets: a minimal one, and one that sends gunicorn the same request headers as
mfserv's front (X-Forwarded-*, X-Request-Id); and mfserv's own nginx with those headers turned
off in mfserv.ini (a reload, same workers) against the minimal one: each pair does one job.
Prints figures and ratios against the issue's targets; asserts nothing.

Run through scripts/bench-supervision (it installs supervisor and wrk, and builds mfserv).
Everything lives in one temporary folder; every process started is stopped at the end.
Network: 127.0.0.1 and unix sockets only; every wait is bounded.
"""

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: bench-supervision\r\n\r\n"
RETRY_S = 0.010  # every poll of this benchmark: 10 ms

# The app answers "ok" and names the process that answered (X-Worker-Token, drawn when gunicorn
# imports the app in its worker), so that a restart is only counted once a *new* process answers.
WSGI_APP = '''import os
import uuid

TOKEN = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:12])


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                              ("X-Worker-Token", TOKEN)])
    return [b"ok"]
'''

PLUGIN_CONFIG = """[general]
_version = 1.0.0
_release = 1
_summary = supervision benchmark app {index}
_license = BSD-3-Clause
_url = https://example.invalid/{name}
_maintainer = bench-supervision
_vendor = mfserv

[app_main]
_cmd_and_args = {command}
numprocesses = 2
"""

GUNICORN = "/usr/bin/python3 -m gunicorn --workers 1 --bind unix:{socket} wsgi:app"


def now():
    return time.monotonic()


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------
# /proc


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (fields 14 and 15), every thread


def ctxt_switches(pid):
    """(voluntary, nonvoluntary) summed over every thread of pid."""
    voluntary = nonvoluntary = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        nonvoluntary += int(line.split()[1])
        except FileNotFoundError:
            pass
    return voluntary, nonvoluntary


def smaps_rollup(pid):
    """{'Pss': kB, 'Private': kB} of pid."""
    values = {"Pss": 0, "Private": 0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name == "Pss":
                values["Pss"] = int(rest.split()[0])
            elif name in ("Private_Clean", "Private_Dirty"):
                values["Private"] += int(rest.split()[0])
    return values


def sandbox_inits(pid):
    """Children of pid running mfserv-init (pid 1 of each worker's pid namespace), which
    stands beside the mfserv binary."""
    init = os.path.join(os.path.dirname(os.readlink(f"/proc/{pid}/exe")), "mfserv-init")
    found = []
    for child in children_of(pid):
        try:
            if os.readlink(f"/proc/{child}/exe") == init:
                found.append(child)
        except OSError:
            pass
    return found


def memory_of(pids):
    """Summed PSS and private memory (kB) of pids that still exist."""
    total = {"Pss": 0, "Private": 0, "count": 0}
    for pid in pids:
        try:
            values = smaps_rollup(pid)
        except OSError:
            continue
        total["Pss"] += values["Pss"]
        total["Private"] += values["Private"]
        total["count"] += 1
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_busy(seconds=1.0):
    """Fraction of the host's CPU time spent busy over SECONDS (all CPUs, from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_cpu_quiet(tool, max_busy=0.10, timeout=90.0):
    """Waits (bounded) until the host is nearly idle, so that both tools' restarts are timed
    under the same conditions rather than in the wake of a start-up burst. Returns the last
    busy fraction seen."""
    deadline = now() + timeout
    busy = cpu_busy()
    while busy > max_busy and now() < deadline:
        busy = cpu_busy()
    log(f"{tool}: host CPU {busy * 100:.0f}% busy before the kills"
        + ("" if busy <= max_busy else f" (still above {max_busy * 100:.0f}% after {timeout:.0f} s)"))
    return busy


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def idle_sample(pid, seconds, helpers=()):
    def helper_switches():
        total = 0
        for helper in helpers:
            try:
                total += sum(ctxt_switches(helper))
            except OSError:
                pass
        return total

    h0 = helper_switches()
    ticks0, (vol0, inv0), t0 = cpu_ticks(pid), ctxt_switches(pid), now()
    time.sleep(seconds)
    ticks1, (vol1, inv1), t1 = cpu_ticks(pid), ctxt_switches(pid), now()
    h1 = helper_switches()
    elapsed = t1 - t0
    return {
        "pss_kib": smaps_rollup(pid)["Pss"],
        "helper_switches": h1 - h0,
        "rss_kib": rss_kib(pid),
        "threads": thread_count(pid),
        "ticks": ticks1 - ticks0,
        "voluntary": vol1 - vol0,
        "nonvoluntary": inv1 - inv0,
        "wakeups_per_s": (vol1 - vol0 + inv1 - inv0) / elapsed,
        "seconds": elapsed,
    }


def processes_mentioning(text):
    """Pids whose command line contains text (our unique temporary folder)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def descendants_of(pid):
    found = []
    for child in children_of(pid):
        found += [child] + descendants_of(child)
    return found


def ticks_of(pids):
    total = 0
    for pid in pids:
        try:
            total += cpu_ticks(pid)
        except (OSError, ValueError, IndexError):
            pass
    return total


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------------------------------
# HTTP on unix sockets


def parse_answer(data):
    """(ok, token) of a raw HTTP/1.0 response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not re.match(rb"HTTP/1\.[01] 200 ", lines[0] + b" ") or body != b"ok":
        return False, None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-worker-token":
            return True, value.strip().decode()
    return True, None


def get_token(path, timeout=10.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(REQUEST)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    ok, token = parse_answer(data)
    if not ok:
        raise RuntimeError(f"{path} answered {data[:80]!r}")
    return token


def wait_answers(paths, t0, deadline, stale=frozenset(), attempt_s=30.0):
    """Time (s since t0) at which each path first answers 200 "ok" from a process whose token is
    not in stale. One request in flight per path; a refused/missing socket, a closed connection
    or a stale answer is retried 10 ms later. A connection that waits in the backlog (a
    supervisor-owned socket while its worker restarts) is answered as soon as a worker accepts."""
    selector = selectors.DefaultSelector()
    pending = set(paths)
    next_try = {p: t0 for p in paths}
    inflight = {}  # path -> [socket, buffer, started]
    answered = {}
    retries = {p: 0 for p in paths}

    def retry(path):
        entry = inflight.pop(path, None)
        if entry:
            selector.unregister(entry[0])
            entry[0].close()
        retries[path] += 1
        next_try[path] = now() + RETRY_S

    def start(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            s.connect(path)
            s.send(REQUEST)
        except OSError:  # ENOENT, ECONNREFUSED, EAGAIN (backlog full)...
            s.close()
            retries[path] += 1
            next_try[path] = now() + RETRY_S
            return
        inflight[path] = [s, b"", now()]
        selector.register(s, selectors.EVENT_READ, path)

    try:
        while pending and now() < deadline:
            t = now()
            for path in list(pending):
                if path not in inflight and next_try[path] <= t:
                    start(path)
            waits = [next_try[p] for p in pending if p not in inflight]
            waits += [e[2] + attempt_s for e in inflight.values()]
            wake = min(waits + [deadline])
            for key, _ in selector.select(max(0.0, min(wake - now(), 0.5))):
                path = key.data
                s, buffer, _ = inflight[path]
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    retry(path)
                    continue
                if chunk:
                    inflight[path][1] = buffer + chunk
                    continue
                ok, token = parse_answer(buffer)
                if ok and token not in stale:
                    answered[path] = now() - t0
                    pending.discard(path)
                    entry = inflight.pop(path)
                    selector.unregister(entry[0])
                    entry[0].close()
                else:
                    retry(path)
            t = now()
            for path in [p for p, e in inflight.items() if t - e[2] > attempt_s]:
                retry(path)
    finally:
        for s, _, _ in inflight.values():
            selector.unregister(s)
            s.close()
        selector.close()
    return answered


# ------------------------------------------------------------------------------------------
# helpers


def median(values):
    return statistics.median(values) if values else float("nan")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_pid_gone(pid, timeout):
    deadline = now() + timeout
    while now() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        try:  # reap it if it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not os.path.exists(f"/proc/{pid}")


def run_wrk(url, seconds, threads, connections):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1).strip() if errors else "",
        "raw": out,
    }


def restart_series(tool, http_targets, state_targets, lookup, args, orphans=None):
    """kill -9 each target's pid once. http_targets: time until its socket answers from a new
    process (the token changed). state_targets: time until the tool shows a new pid, and until
    it shows it running, polled every 10 ms through the tool's own API. lookup(key) gives
    (pid, running, socket path)."""
    results = {"http": [], "new_pid": [], "running": []}
    for mode, targets in (("http", http_targets), ("state", state_targets)):
        for key, label in targets:
            old_pid, _, path = lookup(key)
            old_token = get_token(path)
            if orphans is not None:  # gunicorn's worker outlives its master killed by -9
                orphans += children_of(old_pid)
            t0 = now()
            os.kill(old_pid, signal.SIGKILL)
            if mode == "http":
                got = wait_answers([path], t0, t0 + args.restart_timeout, stale={old_token})
                results["http"].append(got.get(path))
                log(f"{tool}: kill -9 {label} (pid {old_pid}): a new process answers on its "
                    f"socket after {fmt_ms(got.get(path))}")
            else:
                new_pid = running = None
                deadline = t0 + args.restart_timeout
                while now() < deadline:
                    try:
                        pid, is_running, _ = lookup(key)
                    except Exception:  # noqa: BLE001 - a failed look-up counts as a miss
                        pid, is_running = old_pid, False
                    if pid not in (old_pid, 0, -1):
                        new_pid = new_pid if new_pid is not None else now() - t0
                        if is_running:
                            running = now() - t0
                            break
                    time.sleep(RETRY_S)
                results["new_pid"].append(new_pid)
                results["running"].append(running)
                log(f"{tool}: kill -9 {label} (pid {old_pid}): a new pid shows after "
                    f"{fmt_ms(new_pid)}, running after {fmt_ms(running)}")
            time.sleep(args.between_kills)
    return results


# ------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.mfserv_bin = os.path.abspath(args.mfserv)
        self.root = tempfile.mkdtemp(prefix="mfserv-bench-supervision-")
        os.chmod(self.root, 0o755)
        self.home = os.path.join(self.root, "home")
        self.src = os.path.join(self.root, "src")
        self.sv = os.path.join(self.root, "supervisord")
        # Two hand-written configurations: "hand" is the minimal one the issue names; "headers"
        # adds the request and response headers mfserv's front sends (X-Forwarded-*,
        # X-Request-Id, HTTP/1.1), which gunicorn parses in Python for every request.
        self.hand = {v: os.path.join(self.root, f"nginx-{v}") for v in ("hand", "headers")}
        self.plugins = [f"plugin{i}" for i in range(1, args.plugins + 1)]
        self.port = args.port or free_port()
        self.hand_port = {"hand": args.hand_port or free_port(), "headers": free_port()}
        self.mfserv_running = False
        self.supervisord = None
        self.hand_nginx_pid = {}
        self.orphans = []
        self.results = {}

    # -- mfserv ---------------------------------------------------------------------------
    def mfserv(self, *args, timeout=120):
        return subprocess.run([self.mfserv_bin, "--home", self.home, *args], capture_output=True,
                              text=True, timeout=timeout)

    def ps(self):
        result = self.mfserv("ps", "--json", timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"mfserv ps --json: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def mfserv_socket(self, plugin, worker):
        return f"{self.home}/run/sockets/app_{plugin}_main_{worker}.socket"

    def generate(self):
        log(f"generating {len(self.plugins)} plugins x 2 gunicorn workers in {self.root}")
        for index, name in enumerate(self.plugins, 1):
            app_dir = os.path.join(self.src, name, "main")
            os.makedirs(app_dir)
            with open(os.path.join(self.src, name, "config.ini"), "w") as f:
                f.write(PLUGIN_CONFIG.format(index=index, name=name,
                                             command=GUNICORN.format(socket="{unix_socket_path}")))
            with open(os.path.join(app_dir, "wsgi.py"), "w") as f:
                f.write(WSGI_APP)
        for dirpath, dirnames, filenames in os.walk(self.src):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        for name in self.plugins:
            result = self.mfserv("plugin", "develop", os.path.join(self.src, name))
            if result.returncode != 0:
                raise RuntimeError(f"plugin develop {name}: {result.stderr.strip()}")

    def mfserv_phase(self):
        paths = [self.mfserv_socket(p, w) for p in self.plugins for w in (1, 2)]
        self.results["load_mf_start"] = loadavg()
        log(f"mfserv: run --detach --port {self.port} ({len(paths)} workers); load {loadavg()}")
        t0 = now()
        proc = subprocess.Popen([self.mfserv_bin, "--home", self.home, "run", "--detach",
                                 "--port", str(self.port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.mfserv_running = True
        detach = {}

        def waiter():
            out, err = proc.communicate(timeout=self.args.start_timeout)
            detach.update(t=now() - t0, rc=proc.returncode, out=out.strip(), err=err.strip())

        thread = threading.Thread(target=waiter)
        thread.start()
        answered = wait_answers(paths, t0, t0 + self.args.start_timeout)
        thread.join(self.args.start_timeout + 10)
        log(f"mfserv: run --detach returned after {detach.get('t', float('nan')):.2f} s "
            f"(exit {detach.get('rc')}): {detach.get('out', '')} {detach.get('err', '')}")
        log(f"mfserv: {len(answered)}/{len(paths)} sockets answered, last after "
            f"{max(answered.values(), default=float('nan')):.2f} s")
        ps = self.ps()
        sockets = {r["socket"] for r in ps["processes"]}
        if sockets != set(paths):
            log(f"mfserv: WARNING: ps --json lists other sockets than expected ({len(sockets)})")
        states = {}
        for row in ps["processes"]:
            states[row["state"]] = states.get(row["state"], 0) + 1
        log(f"mfserv: worker states {states}")
        pid = ps["service"]["pid"]
        r = self.results
        r["mf_detach_s"] = detach.get("t")
        r["mf_sockets_s"] = max(answered.values()) if len(answered) == len(paths) else None
        r["mf_answered"] = len(answered)
        r["mf_workers"] = len(paths)

        log(f"mfserv: supervisor pid {pid}; settling {self.args.settle} s, then idle for "
            f"{self.args.idle} s")
        time.sleep(self.args.settle)
        helpers = sandbox_inits(pid)
        r["mf_idle"] = idle_sample(pid, self.args.idle, helpers)
        r["mf_helpers"] = memory_of(helpers)
        r["load_mf_idle"] = loadavg()
        log(f"mfserv: idle {r['mf_idle']}")

        # Restart latency, measured twice on different workers (no backoff carried over, and
        # the ps polling of one series cannot slow down the restart the other one times).
        ps_durations = []

        def lookup(key):
            plugin, worker = key
            started = now()
            rows = self.ps()["processes"]
            ps_durations.append(now() - started)
            row = next(x for x in rows if x["plugin"] == plugin and x["worker"] == worker)
            return row["pid"], row["state"] == "running", row["socket"]

        idle_calls = []
        for _ in range(5):
            started = now()
            self.ps()
            idle_calls.append(now() - started)
        r["mf_ps_idle_call_s"] = median(idle_calls)
        r["mf_busy_before_kills"] = wait_cpu_quiet("mfserv")
        targets = self.kill_targets()
        r["mf_kills"] = restart_series("mfserv", [((p, 1), f"{p}/main w1") for p in targets],
                                       [((p, 2), f"{p}/main w2") for p in targets], lookup,
                                       self.args)
        r["mf_ps_call_s"] = median(ps_durations)
        r["mf_rss_after_kills_kib"] = rss_kib(pid)

    def kill_targets(self):
        return [self.plugins[(k * len(self.plugins)) // self.args.kills] for k in
                range(self.args.kills)]

    # -- throughput -----------------------------------------------------------------------
    def hand_nginx_conf(self, variant):
        folder = self.hand[variant]
        os.makedirs(os.path.join(folder, "tmp"), exist_ok=True)
        os.chmod(folder, 0o755)
        sockets = [self.mfserv_socket(self.plugins[0], w) for w in (1, 2)]
        # Same worker count as mfserv's nginx, so that only the configuration differs.
        workers = "auto"
        with open(os.path.join(self.home, "run", "nginx.conf")) as f:
            m = re.search(r"^worker_processes\s+(\S+);", f.read(), re.M)
            if m:
                workers = m.group(1)
        servers = "\n".join(f"        server unix:{s};" for s in sockets)
        headers = "" if variant == "hand" else """
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $http_host;
    proxy_set_header X-Request-Id $request_id;
    add_header X-Request-Id $request_id always;
"""
        conf = f"""# hand-written: one upstream (least_conn) with the two sockets, proxy_pass
user www-data;
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/tmp/client_body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
{headers}
    upstream app {{
        least_conn;
{servers}
    }}

    server {{
        listen 127.0.0.1:{self.hand_port[variant]};
        location / {{
            proxy_pass http://app;
        }}
    }}
}}
"""
        path = os.path.join(folder, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    def start_hand_nginx(self, variant):
        conf = self.hand_nginx_conf(variant)
        result = subprocess.run(["nginx", "-c", conf, "-p", self.hand[variant]],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"hand-written nginx ({variant}): {result.stderr.strip()}")
        deadline = now() + 10
        while now() < deadline and variant not in self.hand_nginx_pid:
            try:
                with open(os.path.join(self.hand[variant], "nginx.pid")) as f:
                    self.hand_nginx_pid[variant] = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.05)

    def set_front_headers(self, on, url):
        """mfserv.ini's add_x_forwarded_headers and add_request_id_header, applied by a reload
        (same workers); returns once nginx answers with the new configuration."""
        path = os.path.join(self.home, "config", "mfserv.ini")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        flag = "1" if on else "0"
        with open(path, "w") as f:
            f.write(f"[nginx]\nadd_x_forwarded_headers = {flag}\nadd_request_id_header = {flag}\n")
        result = self.mfserv("reload")
        if result.returncode != 0:
            raise RuntimeError(f"mfserv reload: {result.stderr.strip()}")
        deadline = now() + 15
        while now() < deadline:
            head = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "--max-time", "5",
                                   url], capture_output=True, text=True, timeout=10).stdout
            if ("x-request-id:" in head.lower()) == on:
                return
            time.sleep(0.05)
        raise RuntimeError("mfserv's nginx did not take the new headers setting in 15 s")

    def throughput_phase(self):
        url = f"http://127.0.0.1:{self.port}/{self.plugins[0]}/main/"
        # "plain" is mfserv's own nginx with add_x_forwarded_headers = 0 and
        # add_request_id_header = 0: the bare job of the minimal hand-written configuration.
        urls = {"mfserv": url, "plain": url}
        for variant in self.hand:
            self.start_hand_nginx(variant)
            urls[variant] = f"http://127.0.0.1:{self.hand_port[variant]}/{self.plugins[0]}/main/"
        for name, url_ in urls.items():
            check = subprocess.run(["curl", "-s", "--max-time", "5", url_], capture_output=True,
                                   text=True, timeout=10)
            if check.stdout != "ok":
                raise RuntimeError(f"{name} nginx answered {check.stdout!r} at {url_}")
            run_wrk(url_, 1, self.args.wrk_threads, self.args.wrk_connections)  # warm-up
        self.results["load_wrk"] = loadavg()
        # CPU per request, besides throughput: the two cores are shared with wrk and anything
        # else running, so req/s moves by 10% between runs; the CPU each request costs nginx
        # and the app's processes barely does.
        masters = {"mfserv": self.ps()["nginx"]["pid"], **self.hand_nginx_pid}
        masters["plain"] = masters["mfserv"]
        app_pids = [p for row in self.ps()["processes"] if row["plugin"] == self.plugins[0]
                    for p in [row["pid"]] + descendants_of(row["pid"])]
        runs = {name: [] for name in urls}
        order = ("mfserv", "hand", "headers", "plain")
        for round_ in range(self.args.wrk_rounds):
            # Rotated each round: a drift within a round does not always favour the same one.
            for name in order[round_ % 4:] + order[:round_ % 4]:
                if name == "plain":
                    self.set_front_headers(False, url)
                    run_wrk(url, 1, self.args.wrk_threads, self.args.wrk_connections)
                nginx_pids = children_of(masters[name])
                before = (ticks_of(nginx_pids), ticks_of(app_pids))
                w = run_wrk(urls[name], self.args.wrk_seconds, self.args.wrk_threads,
                            self.args.wrk_connections)
                after = (ticks_of(nginx_pids), ticks_of(app_pids))
                per_request = 1e6 / CLK_TCK / max(w["requests"], 1)
                w["nginx_us"] = (after[0] - before[0]) * per_request
                w["app_us"] = (after[1] - before[1]) * per_request
                runs[name].append(w)
                log(f"throughput round {round_ + 1}: {name:7} {w['rps']:9.1f} req/s "
                    f"non-2xx {w['non2xx']} socket errors [{w['errors'] or 'none'}]")
                if name == "plain":
                    self.set_front_headers(True, url)
                    run_wrk(url, 1, self.args.wrk_threads, self.args.wrk_connections)
        self.results["throughput"] = runs
        self.stop_hand_nginx()

    def stop_hand_nginx(self):
        for variant, pid in list(self.hand_nginx_pid.items()):
            folder = self.hand[variant]
            subprocess.run(["nginx", "-c", os.path.join(folder, "nginx.conf"), "-p", folder,
                            "-s", "quit"], capture_output=True, timeout=30)
            if not wait_pid_gone(pid, 15):
                kill_pids(children_of(pid) + [pid])
                wait_pid_gone(pid, 5)
            del self.hand_nginx_pid[variant]

    def stop_mfserv(self):
        if not self.mfserv_running:
            return
        log("mfserv: stop")
        t0 = now()
        result = self.mfserv("stop", timeout=300)
        if result.returncode != 0:
            log(f"mfserv stop: exit {result.returncode}: {result.stderr.strip()}")
        else:
            self.results["mf_stop_s"] = now() - t0
            log(f"mfserv: stopped after {now() - t0:.2f} s")
        self.mfserv_running = False
        leftovers = processes_mentioning(self.home)
        if leftovers:
            log(f"mfserv: WARNING: processes left after stop: {leftovers}; killing them")
            kill_pids(leftovers)

    # -- supervisord ----------------------------------------------------------------------
    def sv_socket(self, plugin, worker):
        return f"{self.sv}/sockets/{plugin}_w{worker}.socket"

    def supervisord_conf(self):
        os.makedirs(os.path.join(self.sv, "sockets"))
        os.makedirs(os.path.join(self.sv, "logs"))
        lines = [
            "[unix_http_server]",
            f"file={self.sv}/supervisor.sock",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={self.sv}/supervisord.log",
            f"pidfile={self.sv}/supervisord.pid",
            f"childlogdir={self.sv}/logs",
            "minfds=8192",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.sv}/supervisor.sock",
            "",
        ]
        for plugin in self.plugins:
            for worker in (1, 2):
                lines += [
                    f"[program:{plugin}_w{worker}]",
                    "command=" + GUNICORN.format(socket=self.sv_socket(plugin, worker)),
                    f"directory={self.src}/{plugin}/main",
                    "autorestart=true",
                    "startsecs=1",
                    "redirect_stderr=true",
                    f"stdout_logfile={self.sv}/logs/{plugin}_w{worker}.log",
                    "",
                ]
        path = os.path.join(self.sv, "supervisord.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    def rpc(self):
        from supervisor.xmlrpc import SupervisorTransport
        transport = SupervisorTransport(None, None, f"unix://{self.sv}/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def supervisord_phase(self):
        conf = self.supervisord_conf()
        names = [f"{p}_w{w}" for p in self.plugins for w in (1, 2)]
        paths = [self.sv_socket(p, w) for p in self.plugins for w in (1, 2)]
        self.results["load_sv_start"] = loadavg()
        log(f"supervisord: supervisord -c {conf} -n ({len(names)} programs); load {loadavg()}")
        out = open(os.path.join(self.sv, "supervisord.out"), "w")
        t0 = now()
        self.supervisord = subprocess.Popen(["supervisord", "-c", conf, "-n"], stdout=out,
                                            stderr=subprocess.STDOUT)
        out.close()
        running = {}

        def poll_running():  # all RUNNING, polled over XML-RPC every 100 ms (supervisorctl's API)
            deadline = t0 + self.args.start_timeout
            proxy = None
            while now() < deadline:
                try:
                    proxy = proxy or self.rpc()
                    infos = proxy.supervisor.getAllProcessInfo()
                    count = sum(1 for i in infos if i["statename"] == "RUNNING")
                    running["count"] = count
                    if count == len(names):
                        running["t"] = now() - t0
                        return
                except (OSError, xmlrpc.client.Error):
                    proxy = None
                time.sleep(0.1)

        thread = threading.Thread(target=poll_running)
        thread.start()
        answered = wait_answers(paths, t0, t0 + self.args.start_timeout)
        thread.join(self.args.start_timeout + 10)
        slow = sorted(answered.items(), key=lambda kv: -kv[1])[:3]
        log(f"supervisord: slowest sockets {[(os.path.basename(k), round(v, 2)) for k, v in slow]}")
        log(f"supervisord: {len(answered)}/{len(paths)} sockets answered, last after "
            f"{max(answered.values(), default=float('nan')):.2f} s; all RUNNING after "
            f"{running.get('t', float('nan')):.2f} s ({running.get('count', 0)} RUNNING)")
        r = self.results
        r["sv_sockets_s"] = max(answered.values()) if len(answered) == len(paths) else None
        r["sv_running_s"] = running.get("t")
        r["sv_answered"] = len(answered)
        pid = self.supervisord.pid
        log(f"supervisord: pid {pid}; settling {self.args.settle} s, then idle for "
            f"{self.args.idle} s")
        time.sleep(self.args.settle)
        r["sv_idle"] = idle_sample(pid, self.args.idle)
        r["load_sv_idle"] = loadavg()
        log(f"supervisord: idle {r['sv_idle']}")

        rpc_by_thread = threading.local()

        def lookup(name):
            if getattr(rpc_by_thread, "proxy", None) is None:
                rpc_by_thread.proxy = self.rpc()
            info = rpc_by_thread.proxy.supervisor.getProcessInfo(name)
            plugin, _, worker = name.rpartition("_w")
            return info["pid"], info["statename"] == "RUNNING", self.sv_socket(plugin, int(worker))

        r["sv_busy_before_kills"] = wait_cpu_quiet("supervisord")
        targets = self.kill_targets()
        r["sv_kills"] = restart_series("supervisord", [(f"{p}_w1", f"{p}_w1") for p in targets],
                                       [(f"{p}_w2", f"{p}_w2") for p in targets], lookup,
                                       self.args, orphans=self.orphans)
        r["sv_rss_after_kills_kib"] = rss_kib(pid)

    def stop_supervisord(self):
        if self.supervisord is None:
            return
        log("supervisord: shutdown")
        t0 = now()
        subprocess.run(["supervisorctl", "-c", os.path.join(self.sv, "supervisord.conf"),
                        "shutdown"], capture_output=True, timeout=60)
        try:
            self.supervisord.wait(timeout=300)
            self.results["sv_stop_s"] = now() - t0
            log(f"supervisord: exited after {now() - t0:.2f} s")
        except subprocess.TimeoutExpired:
            kill_pids(children_of(self.supervisord.pid) + [self.supervisord.pid])
            self.supervisord.wait(timeout=10)
        self.supervisord = None

    def cleanup(self):
        for step in (self.stop_hand_nginx, self.stop_mfserv, self.stop_supervisord):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - clean up as much as possible
                log(f"cleanup: {step.__name__}: {e}")
        kill_pids([p for p in self.orphans if os.path.exists(f"/proc/{p}")])
        leftovers = processes_mentioning(self.root)
        if leftovers:
            log(f"cleanup: killing leftover processes {leftovers}")
            kill_pids(leftovers)
            for pid in leftovers:
                wait_pid_gone(pid, 5)
        if self.args.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- report ---------------------------------------------------------------------------
    def report(self):
        r = self.results
        n = r.get("mf_workers", 2 * len(self.plugins))
        rows = []

        def ratio(a, b):
            return a / b if a is not None and b not in (None, 0) else None

        def add(metric, mf, sv, unit, target, met, digits=2):
            rows.append((metric, num(mf, digits, unit), num(sv, digits, unit),
                         num(ratio(mf, sv), 3, ""), target, met))

        add(f"start -> all {n} sockets answer HTTP", r.get("mf_sockets_s"), r.get("sv_sockets_s"),
            " s", "-", "-")
        add("start -> ready as reported (run --detach / all RUNNING)", r.get("mf_detach_s"),
            r.get("sv_running_s"), " s", "-", "-")
        mi, si = r.get("mf_idle", {}), r.get("sv_idle", {})
        mf_rss = mi.get("rss_kib", 0) / 1024 if mi else None
        sv_rss = si.get("rss_kib", 0) / 1024 if si else None
        rss_ratio = ratio(mf_rss, sv_rss)
        add("idle RSS of the supervisor process", mf_rss, sv_rss, " MiB", "ratio <= 0.200",
            yes_no(rss_ratio is not None and rss_ratio <= 0.2))
        helpers = r.get("mf_helpers")
        mf_total = (mi.get("pss_kib", 0) + helpers["Pss"]) / 1024 if mi and helpers else None
        sv_total = si.get("pss_kib", 0) / 1024 if si else None
        add(f"idle PSS: supervisor + its {helpers['count'] if helpers else '?'} sandbox helpers "
            "(mfserv) / supervisord", mf_total, sv_total, " MiB", "-", "-")
        add(f"idle CPU ticks / {self.args.idle} s (utime+stime, {CLK_TCK} Hz)", mi.get("ticks"),
            si.get("ticks"), "", "-", "-", 0)
        add(f"idle wakeups/s (ctxt switches / {self.args.idle} s)", mi.get("wakeups_per_s"),
            si.get("wakeups_per_s"), "", "mfserv 0 (no timer armed)",
            yes_no(mi.get("wakeups_per_s") == 0) if mi else "-")
        def series(prefix, field):
            values = [v for v in r.get(prefix + "_kills", {}).get(field, []) if v is not None]
            return values, (median(values) * 1000 if values else None)

        def attempted(prefix, field):
            return len(r.get(prefix + "_kills", {}).get(field, []))

        mk, mf_restart = series("mf", "http")
        sk, sv_restart = series("sv", "http")
        restart_ratio = ratio(mf_restart, sv_restart)
        add(f"restart: kill -9 -> socket answers from a new process (median, "
            f"{len(mk)}/{attempted('mf', 'http')} vs {len(sk)}/{attempted('sv', 'http')} kills)",
            mf_restart, sv_restart, " ms", "ratio < 1",
            yes_no(restart_ratio is not None and restart_ratio < 1), 0)
        _, mf_new = series("mf", "new_pid")
        _, sv_new = series("sv", "new_pid")
        add("restart: kill -9 -> a new pid shows (ps --json / getProcessInfo, 10 ms polls)",
            mf_new, sv_new, " ms", "-", "-", 0)
        mr, mf_run = series("mf", "running")
        sr, sv_run = series("sv", "running")
        add("restart: kill -9 -> shown running (ps: probe answered / RUNNING: startsecs=1)",
            mf_run, sv_run, " ms", "-", "-", 0)

        add("stop everything (mfserv stop / supervisorctl shutdown until supervisord exits)",
            r.get("mf_stop_s"), r.get("sv_stop_s"), " s", "-", "-")

        header = ("metric", "mfserv", "supervisord", "ratio", "target", "met")
        widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(6)]
        line = "  ".join("{:<%d}" % w for w in widths)
        print()
        print(f"== mfserv vs supervisord: {len(self.plugins)} apps x 2 gunicorn workers ==")
        print(line.format(*header))
        print(line.format(*["-" * w for w in widths]))
        for row in rows:
            print(line.format(*row))

        tp = r.get("throughput")
        if tp:
            print()
            print(f"== throughput: wrk -t{self.args.wrk_threads} -c{self.args.wrk_connections} "
                  f"-d{self.args.wrk_seconds}s, /{self.plugins[0]}/main/, {self.args.wrk_rounds} "
                  "rounds, each variant once a round in a rotating order ==")
            labels = {"mfserv": "mfserv nginx (default)",
                      "headers": "hand-written + headers",
                      "plain": "mfserv nginx, headers 0",
                      "hand": "hand-written nginx.conf"}
            for name, label in labels.items():
                all_runs = " / ".join(f"{w['rps']:.0f}" for w in tp[name])
                print(f"{label:<24} median {median([w['rps'] for w in tp[name]]):>8.0f} req/s "
                      f"(rounds: {all_runs})")
            # The host drifts by 10% and more over a run: each ratio is taken within a round
            # (the two variants measured a few seconds apart), then the median over rounds.
            pairs = (("mfserv", "headers", "same job: MFSERV's headers"),
                     ("plain", "hand", "same job: no forwarded headers"),
                     ("mfserv", "hand", "not the same job: the app parses 5 more headers"))
            for mine, other, what in pairs:
                per_round = [a["rps"] / b["rps"] for a, b in zip(tp[mine], tp[other]) if b["rps"]]
                value = median(per_round) if per_round else None
                target = ("target >= 0.98: " + yes_no(value is not None and value >= 0.98)
                          if mine != "mfserv" or other != "hand" else "-")
                print(f"ratio {mine}/{other:<8} {num(value, 3, ''):>7} (rounds: "
                      f"{' '.join(f'{x:.3f}' for x in per_round)}; {what})  {target}")
            print("CPU per request (median of rounds, us): nginx workers + the app's processes")
            for name in labels:
                nginx_us = median([w["nginx_us"] for w in tp[name]])
                app_us = median([w["app_us"] for w in tp[name]])
                print(f"  {name:<8} nginx {nginx_us:6.1f} + app {app_us:6.1f} = "
                      f"{nginx_us + app_us:6.1f}")
            for mine, other, _ in pairs:
                per_round = [(b["nginx_us"] + b["app_us"]) / (a["nginx_us"] + a["app_us"])
                             for a, b in zip(tp[mine], tp[other]) if a["nginx_us"] + a["app_us"]]
                print(f"  CPU ratio {other}/{mine} (the throughput ratio when CPU-bound): "
                      f"{num(median(per_round) if per_round else None, 3, '')}")
            bad = sum(w["non2xx"] for runs in tp.values() for w in runs)
            print(f"non-2xx responses over all runs: {bad}")

        print()
        print("notes:")
        if mi:
            print(f"- mfserv idle: {mi['voluntary']} voluntary + {mi['nonvoluntary']} involuntary "
                  f"context switches over {mi['seconds']:.1f} s, {mi['threads']} thread(s); "
                  f"supervisord idle: {si.get('voluntary')} + {si.get('nonvoluntary')}, "
                  f"{si.get('threads')} thread(s). Sampled after {self.args.settle} s of settling.")
        if helpers:
            print(f"- mfserv runs one helper per worker (the static mfserv-init, pid 1 of the "
                  f"worker's pid namespace): {helpers['count']} of them, {helpers['Pss'] / 1024:.1f}"
                  f" MiB PSS / {helpers['Private'] / 1024:.1f} MiB private in all, "
                  f"{mi.get('helper_switches')} context switches over the idle sample; the RSS "
                  "row counts only the supervisor process, as the issue's target does.")
        print(f"- load average (1/5/15 min) at mfserv start {r.get('load_mf_start')}, mfserv idle "
              f"{r.get('load_mf_idle')}, wrk {r.get('load_wrk')}, supervisord start "
              f"{r.get('load_sv_start')}, supervisord idle {r.get('load_sv_idle')} "
              f"({os.cpu_count()} CPUs): anything above the benchmark's own load makes the times "
              "and the throughput noisy.")
        busy = [r.get(k) for k in ("mf_busy_before_kills", "sv_busy_before_kills")]
        print("- host CPU busy right before the kills (each series waits, up to 90 s, for <= "
              "10%): mfserv " + ", supervisord ".join(
                  "n/a" if b is None else f"{b * 100:.0f}%" for b in busy))
        print(f"- supervisor RSS after the {self.args.kills} kills: mfserv "
              f"{num(r.get('mf_rss_after_kills_kib', 0) / 1024, 2, ' MiB')}, supervisord "
              f"{num(r.get('sv_rss_after_kills_kib', 0) / 1024, 2, ' MiB')}. mfserv also runs "
              "nginx (not counted above); supervisord serves no HTTP.")
        print(f"- one `mfserv ps --json` call with {n} workers took "
              f"{num(r.get('mf_ps_idle_call_s', 0) * 1000, 1, ' ms')} at idle, "
              f"{num(r.get('mf_ps_call_s', 0) * 1000, 1, ' ms')} while polling a restart "
              "(medians, CLI process included).")
        print("- restart: a different worker is killed each time (no backoff carried over); the "
              "socket series and the state series are separate kills (w1 and w2 of the same "
              "apps), so that polling the tool's API does not slow the timed restart. "
              "mfserv restarts a worker that ran stably at once and its socket keeps "
              "queued connections; supervisord restarts an exited RUNNING program at once (its "
              "backoff only applies to exits before startsecs), gunicorn re-binds the path, and "
              "RUNNING is reported only after startsecs=1 s. kill -9 hits the pid each tool "
              "reports: under mfserv that takes the whole sandbox (pid namespace) down, under "
              "supervisord gunicorn's worker outlives its master for a while (its answers carry "
              "the old token and are not counted).")
        print("- readiness: mfserv's ps shows `running` only after its own HTTP probe answered; "
              "both 'sockets answer' rows use this script's probe (10 ms retries) for both tools.")


def num(value, digits, unit):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def fmt_ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def yes_no(flag):
    return "yes" if flag else "no"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mfserv", required=True, help="the mfserv binary")
    parser.add_argument("--plugins", type=int, default=100)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0, help="idle sample, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before the idle sample")
    parser.add_argument("--between-kills", type=float, default=1.0)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--restart-timeout", type=float, default=60.0)
    parser.add_argument("--wrk-seconds", type=int, default=6)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--wrk-rounds", type=int, default=8)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hand-port", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--skip-supervisord", action="store_true")
    parser.add_argument("--mfserv-only", action="store_true",
                        help="start mfserv with the plugins, print its home and wait for Enter")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-supervision: run as root (cgroups, nginx's user switch)")

    bench = Bench(args)
    interrupted = []
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(1) or sys.exit(1))
    try:
        bench.generate()
        if args.mfserv_only:
            bench.mfserv(*["run", "--detach", "--port", str(bench.port)], timeout=args.start_timeout)
            bench.mfserv_running = True
            print(f"home {bench.home}, port {bench.port}; Enter stops", flush=True)
            sys.stdin.readline()
            return
        bench.mfserv_phase()
        bench.throughput_phase()
        bench.stop_mfserv()
        if not args.skip_supervisord:
            bench.supervisord_phase()
            bench.stop_supervisord()
    finally:
        bench.cleanup()
    bench.report()


if __name__ == "__main__":
    main()
