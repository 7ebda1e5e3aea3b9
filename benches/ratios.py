#!/usr/bin/env python3
"""The figures issue 6 asks for, measured as ratios in one run on this machine.

1. export + import of a 100 MB transcript against cp + sha256sum of it
   (time ratio, and peak memory against the transcript's size);
2. push and pull with nothing changed over 1,000 sessions (time, and
   whether any transcript was opened, via strace when installed);
3. push after appending 1 KB to one session out of 1,000 (what moved);
4. a session with 150 MB of side files (a 100 MB binary file-history
   backup, a 50 MB subagent transcript, 2,000 small backups): bundle size
   against the files' size, peak memory, export + import against cp -r +
   sha256sum (issue 5: memory and bundle size stay bounded);
5. the 100 MB transcript pushed to and pulled from a folder sync dir: peak
   memory of each (issue 11: pull streams, a few MB), and what the secret
   scan adds to a push (`secrets = "warn"` against `"off"`; at most 10%).

Usage: python3 benches/ratios.py [--runs N] [--keep]
Prints min / median / max over N runs (default 5).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SID = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7"


def run(cmd, env=None, cwd=None):
    """Runs a command; returns (seconds, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed, proc.stdout


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_rss(cmd, env=None, cwd=None, cpu=None):
    """Like run, with the command's peak RSS in KiB. Dirty pages of earlier
    runs are flushed first, so no run pays for another's writeback. Peak RSS
    comes from GNU time: a forked Python child would count as its own.
    `cpu`, a list, gets the command's CPU seconds (user + system)."""
    os.sync()
    wrapped = [GNU_TIME, "-f", "%M %U %S", *cmd] if GNU_TIME else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed: {err}")
    if GNU_TIME:
        rss, user, system = err.strip().splitlines()[-1].split()
        rss, seconds = int(rss), float(user) + float(system)
    else:
        rss, seconds = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    if cpu is not None:
        cpu.append(seconds)
    return elapsed, rss


def export_import_rounds(binary, runs, floor, prepare, a, b, repo, b_repo, bundle):
    """Times `floor` (commands to compare with) against ccsync export on A
    plus import on B, `runs` times. `prepare` runs before each round.
    Returns (floor seconds, ours seconds, ratios, peak RSS in bytes)."""
    floor_t, ours_t, ratios, rss = [], [], [], []
    for _ in range(runs):
        prepare()
        t_floor = sum(run_rss(cmd)[0] for cmd in floor)
        t_exp, rss_exp = run_rss([binary, "-q", "export", SID, "-o", bundle], env=a, cwd=repo)
        shutil.rmtree(b["CLAUDE_CONFIG_DIR"], ignore_errors=True)
        t_imp, rss_imp = run_rss([binary, "-q", "import", bundle], env=b, cwd=b_repo)
        floor_t.append(t_floor)
        ours_t.append(t_exp + t_imp)
        ratios.append((t_exp + t_imp) / t_floor)
        rss.append(max(rss_exp, rss_imp) * 1024)
    return floor_t, ours_t, ratios, rss


def spread(values, fmt="{:.3f}"):
    return "min " + fmt.format(min(values)) + "  median " + fmt.format(statistics.median(values)) + "  max " + fmt.format(max(values))


def encode(path):
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in path)


def transcript_line(i, cwd, sid, text):
    return json.dumps({
        "parentUuid": None, "isSidechain": False, "type": "user" if i % 2 == 0 else "assistant",
        "uuid": f"{i:08x}-0000-4000-8000-000000000000", "sessionId": sid, "cwd": cwd,
        "timestamp": "2026-11-21T10:00:00.000Z", "message": {"role": "user", "content": text},
    }, ensure_ascii=False) + "\n"


def machine(base, name):
    home = os.path.join(base, name)
    env = {"PATH": os.environ["PATH"], "HOME": home, "CLAUDE_CONFIG_DIR": os.path.join(home, "claude"),
           "CCSYNC_CONFIG_DIR": os.path.join(home, "cfg"), "CCSYNC_LIVE_WINDOW_MS": "0"}
    os.makedirs(home, exist_ok=True)
    return env


def checkout(path, remote):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["git", "init", "-q", path], check=True)
    subprocess.run(["git", "-C", path, "remote", "add", "origin", remote], check=True)
    return os.path.realpath(path)


def transcripts_opened(binary, args, env, cwd):
    """How many *.jsonl files under projects/ the command opened (strace)."""
    if not shutil.which("strace"):
        return None
    with tempfile.NamedTemporaryFile("r") as log:
        subprocess.run(["strace", "-f", "-e", "trace=open,openat", "-o", log.name, binary, *args],
                       env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return sum(1 for line in log if "/projects/" in line and ".jsonl" in line and "ENOENT" not in line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--only", choices=["big", "many", "sides"], help="run one part")
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "ccsync")
    base = tempfile.mkdtemp(prefix="ccsync-bench-")
    print(f"working in {base}; {os.cpu_count()} cores")
    try:
        for name, part in [("big", big), ("many", many), ("sides", sides)]:
            if args.only in (None, name):
                part(binary, base, args.runs)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def big(binary, base, runs):
    a, b = machine(base, "a"), machine(base, "b")
    repo = checkout(os.path.join(base, "a-repo"), "git@github.com:acme/widget.git")
    b_repo = checkout(os.path.join(base, "b-repo"), "https://github.com/acme/widget")
    project = os.path.join(a["CLAUDE_CONFIG_DIR"], "projects", encode(repo))
    os.makedirs(project)
    source = os.path.join(project, f"{SID}.jsonl")
    size = 0
    with open(source, "w", encoding="utf-8") as f:
        i = 0
        while size < 100 * 1000 * 1000:
            text = 'lorem "quoted" ipsum\n\tü 日本 ' * (1 + (i * 7919) % 200)
            line = transcript_line(i, repo, SID, text)
            f.write(line)
            size += len(line.encode())
            i += 1
    print(f"\n100 MB transcript: {size} bytes, {i} lines")
    bundle = os.path.join(base, "big.ccsync")
    copy = os.path.join(base, "copy.jsonl")
    floor_t, ours_t, ratios, rss = export_import_rounds(
        binary, runs, [["cp", source, copy], ["sha256sum", source]], lambda: None,
        a, b, repo, b_repo, bundle)
    mem = [r / size for r in rss]
    installed = os.path.join(b["CLAUDE_CONFIG_DIR"], "projects", encode(b_repo), f"{SID}.jsonl")
    assert open(installed, "rb").read() == open(source, "rb").read(), "import is not byte-identical"
    print(f"  cp + sha256sum      s   {spread(floor_t)}")
    print(f"  export + import     s   {spread(ours_t)}")
    print(f"  time ratio (<= 2)       {spread(ratios, '{:.2f}')}")
    print(f"  peak memory / size (<= 1.5)  {spread(mem, '{:.4f}')}"
          f"   ({'GNU time' if GNU_TIME else 'wait4, includes the forked Python'})")
    through_a_folder(binary, base, runs, a, b, repo, b_repo, source, installed, size)
    encrypted(binary, base, runs, source, size)


def set_secrets(env, policy):
    """Sets `secrets = POLICY` in a machine's config.toml."""
    path = os.path.join(env["CCSYNC_CONFIG_DIR"], "config.toml")
    lines = [l for l in open(path).read().splitlines() if not l.startswith("secrets")]
    open(path, "w").write("\n".join(lines + [f'secrets = "{policy}"']) + "\n")


def through_a_folder(binary, base, runs, a, b, repo, b_repo, source, installed, size):
    """Push to and pull from a folder sync dir (issue 11: pull streams from
    every transport, peak memory a few MB; the secret scan costs at most
    10% of a push)."""
    sync = os.path.join(base, "sync-folder")
    run([binary, "-q", "init", sync, "--create", "--name", "a"], env=a, cwd=repo)
    run([binary, "-q", "init", sync, "--create", "--name", "b"], env=b, cwd=b_repo)
    obj = os.path.join(sync, "git=github.com_acme_widget", f"{SID}-a.ccsync")
    push_t = {"warn": [], "off": []}
    push_cpu = {"warn": [], "off": []}
    push_m, pull_t, pull_m = [], [], []
    for _ in range(runs):
        # Pairs, so both sides of each ratio see the same machine load.
        for _ in range(3):
            for policy in ("off", "warn"):
                set_secrets(a, policy)
                for stale in (obj, os.path.join(a["CCSYNC_CONFIG_DIR"], "index.json")):
                    if os.path.exists(stale):
                        os.remove(stale)
                t, rss = run_rss([binary, "-q", "push", SID], env=a, cwd=repo, cpu=push_cpu[policy])
                push_t[policy].append(t)
                if policy == "warn":
                    push_m.append(rss * 1024)
        shutil.rmtree(b["CLAUDE_CONFIG_DIR"], ignore_errors=True)
        t, rss = run_rss([binary, "-q", "pull"], env=b, cwd=b_repo)
        pull_t.append(t)
        pull_m.append(rss * 1024)
        assert open(installed, "rb").read() == open(source, "rb").read(), "pull is not byte-identical"
    med = statistics.median
    print(f"\n100 MB through a folder sync dir ({os.path.getsize(obj)} byte bundle)")
    print(f"  push, secret scan on    s   {spread(push_t['warn'])}")
    print(f"  push, secret scan off   s   {spread(push_t['off'])}")
    print(f"  scan cost, wall (<= 0.10)   {med(push_t['warn']) / med(push_t['off']) - 1:+.3f}   (medians)")
    print(f"  push CPU s, scan on / off   {med(push_cpu['warn']):.3f} / {med(push_cpu['off']):.3f}"
          f"   (scan cost {med(push_cpu['warn']) / med(push_cpu['off']) - 1:+.3f} of CPU time)")
    print(f"  pull                    s   {spread(pull_t)}")
    print(f"  peak memory MB, push        {spread([m / 1e6 for m in push_m], '{:.1f}')}")
    print(f"  peak memory MB, pull (<= 64) {spread([m / 1e6 for m in pull_m], '{:.1f}')}")


def encrypted(binary, base, runs, source, size):
    """Push + pull of the 100 MB transcript through a compressed, age-
    encrypted folder sync dir, against cp + sha256sum of it (issue 12:
    <= 2.5x), with peak memory and the stored size."""
    a, b = machine(base, "ea"), machine(base, "eb")
    repo = checkout(os.path.join(base, "ea-repo"), "git@github.com:acme/widget.git")
    b_repo = checkout(os.path.join(base, "eb-repo"), "https://github.com/acme/widget")
    project = os.path.join(a["CLAUDE_CONFIG_DIR"], "projects", encode(repo))
    os.makedirs(project)
    # The same transcript, its lines in this checkout.
    old_cwd = json.dumps(os.path.join(base, "a-repo"))
    mine = os.path.join(project, f"{SID}.jsonl")
    with open(source, "r", encoding="utf-8") as f, open(mine, "w", encoding="utf-8") as out:
        for line in f:
            out.write(line.replace(old_cwd, json.dumps(repo)))
    source = mine
    keys = os.path.join(base, "keys")
    os.makedirs(keys, exist_ok=True)
    for name in ("a", "b"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, name)], check=True)
    sync = os.path.join(base, "sync-encrypted")
    run([binary, "-q", "init", sync, "--create", "--name", "a", "--recipient", os.path.join(keys, "a.pub"),
         "--recipient", os.path.join(keys, "b.pub"), "--identity", os.path.join(keys, "a")], env=a, cwd=repo)
    run([binary, "-q", "init", sync, "--create", "--name", "b", "--identity", os.path.join(keys, "b")], env=b, cwd=b_repo)
    obj = os.path.join(sync, "git=github.com_acme_widget", f"{SID}-a.ccsync")
    installed = os.path.join(b["CLAUDE_CONFIG_DIR"], "projects", encode(b_repo), f"{SID}.jsonl")
    copy = os.path.join(base, "copy-e.jsonl")
    floor_t, ours_t, push_m, pull_m = [], [], [], []
    for _ in range(runs):
        for stale in (obj, os.path.join(a["CCSYNC_CONFIG_DIR"], "index.json"), copy):
            if os.path.exists(stale):
                os.remove(stale)
        shutil.rmtree(b["CLAUDE_CONFIG_DIR"], ignore_errors=True)
        f1, _ = run_rss(["cp", source, copy])
        f2, _ = run_rss(["sha256sum", source])
        floor_t.append(f1 + f2)
        t1, m1 = run_rss([binary, "-q", "push", SID], env=a, cwd=repo)
        t2, m2 = run_rss([binary, "-q", "pull"], env=b, cwd=b_repo)
        ours_t.append(t1 + t2)
        push_m.append(m1 * 1024)
        pull_m.append(m2 * 1024)
        assert open(installed, "rb").read() == open(source, "rb").read(), "not byte-identical"
    assert open(obj, "rb").read(19) == b"age-encryption.org/", "not encrypted"
    print(f"\n100 MB through an encrypted folder sync dir (zstd + age; stored {os.path.getsize(obj) / size:.1%} of the transcript)")
    print(f"  cp + sha256sum          s   {spread(floor_t)}")
    print(f"  push + pull             s   {spread(ours_t)}")
    print(f"  time ratio (<= 2.5)         {spread([o / f for o, f in zip(ours_t, floor_t)], '{:.2f}')}")
    print(f"  peak memory MB, push        {spread([m / 1e6 for m in push_m], '{:.1f}')}")
    print(f"  peak memory MB, pull        {spread([m / 1e6 for m in pull_m], '{:.1f}')}")


def many(binary, base, runs):
    a, b = machine(base, "m-a"), machine(base, "m-b")
    sync = os.path.join(base, "sync")
    repo = checkout(os.path.join(base, "m-a-repo"), "git@github.com:acme/many.git")
    b_repo = checkout(os.path.join(base, "m-b-repo"), "https://github.com/acme/many")
    project = os.path.join(a["CLAUDE_CONFIG_DIR"], "projects", encode(repo))
    os.makedirs(project)
    ids = [f"{i:08x}-1111-4222-8333-444444444444" for i in range(1000)]
    for n, sid in enumerate(ids):
        # About 100 KB each, as issue 12 has it.
        with open(os.path.join(project, f"{sid}.jsonl"), "w", encoding="utf-8") as f:
            for i in range(20):
                words = " ".join(f"{(n * 7919 + i * 104729 + k * 31) % 99991:x}" for k in range(900))
                f.write(transcript_line(i, repo, sid, f"session {n} line {i} {words}"))
        # Every session has a checkpoint backup, so the no-op runs check side files too.
        history = os.path.join(a["CLAUDE_CONFIG_DIR"], "file-history", sid)
        os.makedirs(history)
        with open(os.path.join(history, "5d41402abc4b2a76@v1"), "wb") as f:
            f.write(b"backup %d\n" % n)
    run([binary, "-q", "init", sync, "--create", "--name", "a"], env=a, cwd=repo)
    run([binary, "-q", "init", sync, "--create", "--name", "b"], env=b, cwd=b_repo)
    t_first, _ = run([binary, "-q", "push", "--all"], env=a, cwd=repo)
    t_pull_first, _ = run([binary, "-q", "pull"], env=b, cwd=b_repo)
    print(f"\n1,000 sessions: first push {t_first * 1000:.0f} ms, first pull {t_pull_first * 1000:.0f} ms")
    # The floor for a first pull: copying the same files and hashing them.
    copy = os.path.join(base, "m-copy")
    t_cp, _ = run(["cp", "-r", project, copy])
    files = [os.path.join(copy, f) for f in os.listdir(copy)]
    t_sha, _ = run(["sha256sum", *files])
    floor = t_cp + t_sha
    print(f"  cp -r + sha256sum of them {floor * 1000:.0f} ms; first pull / that = "
          f"{t_pull_first / floor:.2f} (issue 12 target <= 2)")

    push_ms = [run([binary, "-q", "push", "--all"], env=a, cwd=repo)[0] * 1000 for _ in range(runs)]
    pull_ms = [run([binary, "-q", "pull"], env=b, cwd=b_repo)[0] * 1000 for _ in range(runs)]
    print(f"  no-op push --all  ms   {spread(push_ms, '{:.1f}')}   (target < 50)")
    print(f"  no-op pull        ms   {spread(pull_ms, '{:.1f}')}   (target < 50)")
    opened_push = transcripts_opened(binary, ["-q", "push", "--all"], a, repo)
    opened_pull = transcripts_opened(binary, ["-q", "pull"], b, b_repo)
    if opened_push is None:
        print("  transcripts opened: strace is not installed, not checked")
    else:
        print(f"  transcripts opened by a no-op push: {opened_push}, by a no-op pull: {opened_pull}")

    with open(os.path.join(project, f"{ids[500]}.jsonl"), "a", encoding="utf-8") as f:
        f.write(transcript_line(99, repo, ids[500], "y" * 1000))
    t_inc, out = run([binary, "-q", "push", "--all", "--json"], env=a, cwd=repo)
    report = json.loads(out)
    moved = [p["sessionId"] for p in report["pushed"]]
    print(f"  after appending 1 KB to one session: push {t_inc * 1000:.1f} ms, moved {len(moved)} "
          f"session(s) {moved}, {len(report['unchanged'])} unchanged")
    t_pull_inc, out = run([binary, "-q", "pull", "--json"], env=b, cwd=b_repo)
    updated = [s["sessionId"] for s in json.loads(out)["sessions"] if s["action"] != "unchanged"]
    print(f"  and the next pull: {t_pull_inc * 1000:.1f} ms, updated {updated}")



def sides(binary, base, runs):
    a, b = machine(base, "s-a"), machine(base, "s-b")
    repo = checkout(os.path.join(base, "s-a-repo"), "git@github.com:acme/sides.git")
    b_repo = checkout(os.path.join(base, "s-b-repo"), "https://github.com/acme/sides")
    claude = a["CLAUDE_CONFIG_DIR"]
    project = os.path.join(claude, "projects", encode(repo))
    os.makedirs(os.path.join(project, SID, "subagents"))
    with open(os.path.join(project, f"{SID}.jsonl"), "w", encoding="utf-8") as f:
        for i in range(100):
            f.write(transcript_line(i, repo, SID, f"line {i}"))
    history = os.path.join(claude, "file-history", SID)
    os.makedirs(history)
    with open(os.path.join(history, "big@v1"), "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1000 * 1000))
    for i in range(2000):
        with open(os.path.join(history, f"{i:016x}@v1"), "wb") as f:
            f.write(os.urandom(4096))
    with open(os.path.join(project, SID, "subagents", "agent-a1.jsonl"), "w", encoding="utf-8") as f:
        written, i = 0, 0
        while written < 50 * 1000 * 1000:
            line = transcript_line(i, repo, SID, 'sub "agent" ü ' * 100)
            f.write(line)
            written += len(line.encode())
            i += 1
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(claude) for n in names)
    print(f"\nside files: {total} bytes in {2002} files (100 MB binary, 50 MB subagent, 2,000 x 4 KiB)")
    bundle = os.path.join(base, "sides.ccsync")
    copy = os.path.join(base, "sides-copy")
    floor = [["cp", "-r", claude, copy],
             ["sh", "-c", f"find {claude} -type f -exec sha256sum {{}} + > /dev/null"]]
    floor_t, ours_t, ratios, mem = export_import_rounds(
        binary, runs, floor, lambda: shutil.rmtree(copy, ignore_errors=True),
        a, b, repo, b_repo, bundle)
    b_history = os.path.join(b["CLAUDE_CONFIG_DIR"], "file-history", SID)
    assert open(os.path.join(b_history, "big@v1"), "rb").read() == open(os.path.join(history, "big@v1"), "rb").read()
    assert len(os.listdir(b_history)) == 2001
    print(f"  bundle size / side files  {os.path.getsize(bundle) / total:.3f}   (base64 for binary, JSON text for the rest)")
    print(f"  cp -r + sha256sum   s   {spread(floor_t)}")
    print(f"  export + import     s   {spread(ours_t)}")
    print(f"  time ratio              {spread(ratios, '{:.2f}')}")
    print(f"  peak memory MB          {spread([m / 1e6 for m in mem], '{:.1f}')}   ({total / 1e6:.0f} MB of side files)")


if __name__ == "__main__":
    main()
