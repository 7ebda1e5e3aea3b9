#!/usr/bin/env python3
"""`ccsync watch` (issue 13): CPU while idle, and how soon a change moves.

1. One watch idles for --idle seconds (default 60) over a config dir holding
   --sessions sessions (default 200): its CPU time over that span, from
   /proc/<pid>/stat, as a share of one core.
2. Reaction: a new session written on A, until its object is in the sync dir
   (A's watch: debounce + push), and until it is installed on B (B's watch
   pulling every second); then the same for 1 KB appended to it.

Usage: python3 benches/watch.py [--idle SECS] [--sessions N]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ratios import ROOT, checkout, encode, machine, run, transcript_line  # noqa: E402

SID = "7d0c7a51-2b1e-4c4f-9a3d-5e6f7a8b9c0d"


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(check, limit=60):
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if check():
            return time.perf_counter() - start
        time.sleep(0.01)
    sys.exit("timed out")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "ccsync")
    base = tempfile.mkdtemp(prefix="ccsync-watch-bench-")
    watches = []
    try:
        a, b = machine(base, "a"), machine(base, "b")
        repo = checkout(os.path.join(base, "a-repo"), "git@github.com:acme/widget.git")
        b_repo = checkout(os.path.join(base, "b-repo"), "https://github.com/acme/widget")
        sync = os.path.join(base, "sync")
        run([binary, "-q", "init", sync, "--create", "--name", "a"], env=a, cwd=repo)
        run([binary, "-q", "init", sync, "--create", "--name", "b"], env=b, cwd=b_repo)
        project = os.path.join(a["CLAUDE_CONFIG_DIR"], "projects", encode(repo))
        os.makedirs(project)
        for n in range(args.sessions):
            sid = f"{n:08x}-1111-4222-8333-444444444444"
            with open(os.path.join(project, f"{sid}.jsonl"), "w") as f:
                for i in range(20):
                    f.write(transcript_line(i, repo, sid, f"session {n} line {i} " + "x" * 300))
        run([binary, "-q", "push", "--all"], env=a, cwd=repo)
        wa = subprocess.Popen([binary, "watch", "--interval", "60"], env=a, cwd=repo,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watches.append(wa)
        time.sleep(3)  # its first push and pull
        before = cpu_seconds(wa.pid)
        time.sleep(args.idle)
        idle = cpu_seconds(wa.pid) - before
        print(f"idle: {idle:.3f} CPU s over {args.idle} s with {args.sessions} sessions "
              f"= {100 * idle / args.idle:.2f}% of a core (target: about 0%)")

        wb = subprocess.Popen([binary, "watch", "--interval", "1"], env=b, cwd=b_repo,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watches.append(wb)
        time.sleep(3)
        obj = os.path.join(sync, "git=github.com_acme_widget", f"{SID}-a.ccsync")
        there = os.path.join(b["CLAUDE_CONFIG_DIR"], "projects", encode(b_repo), f"{SID}.jsonl")
        source = os.path.join(project, f"{SID}.jsonl")
        with open(source, "w") as f:
            for i in range(20):
                f.write(transcript_line(i, repo, SID, f"watched line {i}"))
        want = open(source, "rb").read()
        t_obj = wait_for(lambda: os.path.exists(obj))
        t_b = wait_for(lambda: os.path.exists(there) and open(there, "rb").read() == want)
        print(f"new session: in the sync dir after {t_obj + 0:.2f} s (debounce 2 s), on B after "
              f"{t_obj + t_b:.2f} s (B pulls every 1 s)")
        with open(source, "a") as f:
            f.write(transcript_line(20, repo, SID, "y" * 1000))
        want = open(source, "rb").read()
        t_b = wait_for(lambda: open(there, "rb").read() == want)
        print(f"1 KB appended: on B after {t_b:.2f} s")
        for w in watches:
            start = time.perf_counter()
            w.send_signal(signal.SIGTERM)
            code = w.wait(timeout=10)
            print(f"SIGTERM: exit {code} after {time.perf_counter() - start:.2f} s")
    finally:
        for w in watches:
            if w.poll() is None:
                w.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
