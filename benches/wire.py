#!/usr/bin/env python3
"""Issue 12, point 1: what moves after a small append to a big session.

A real sshd on 127.0.0.1 (started here, like the ssh tests do) holds the
sync dir; every connection ccsync's ssh makes goes through a ProxyCommand
that counts the bytes it carries both ways: the bytes on the wire,
encryption and handshakes included. Then, with a 100 MB session already
pushed by machine A and pulled by machine B:

  1. A appends 1 KB and pushes: bytes on the wire, bytes added to the
     sync dir;
  2. B pulls: bytes on the wire, and whether B opened its transcript for
     reading (strace: a pull that has the earlier state reads only what
     is new);
  3. for comparison, rsync of the same file over the same ssh (if rsync
     is installed): its bytes on the wire.

Usage: python3 benches/wire.py [--size-mb N] [--keep]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SID = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7"

# ssh may end its ProxyCommand with a signal: the running totals are kept
# in a file of this process's own, rewritten after every chunk.
COUNTER = r'''
import os, socket, sys, threading
host, port, logdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
total = [0, 0]
fd = os.open(os.path.join(logdir, f"conn-{os.getpid()}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
lock = threading.Lock()
def note():
    with lock:
        line = f"{total[0]} {total[1]}\n".encode().ljust(40)
        os.pwrite(fd, line, 0)
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        total[0] += len(data)
        s.sendall(data)
        note()
note()
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    total[1] += len(data)
    os.write(1, data)
    note()
'''


def sh(cmd, env=None, cwd=None):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(d):
    for name in ["host_key", "id"]:
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, name)])
    shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
    os.makedirs("/run/sshd", exist_ok=True)
    port = free_port()
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n"
                "MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n")
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(d, "host_key.pub")) as f:
        host_key = f.read()
    with open(os.path.join(d, "known_hosts"), "w") as f:
        f.write(f"[127.0.0.1]:{port} {host_key}")
    counter = os.path.join(d, "counter.py")
    with open(counter, "w") as f:
        f.write(COUNTER)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    config = os.path.join(d, "ssh_config")
    with open(config, "w") as f:
        f.write(f"Host bench\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                f"  IdentityFile {d}/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n"
                "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
                f"  ProxyCommand {sys.executable} {counter} %h %p {d}/wire\n")
    os.makedirs(os.path.join(d, "wire"))
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.02)
    return sshd, config


SEEN = {}


def wire(d):
    """Bytes sent and received through the counter since the last call, and
    over how many connections (a multiplexed master lives on between
    commands: its totals are counted from where they were)."""
    time.sleep(0.3)  # a connection just closed may still be counting
    logdir = os.path.join(d, "wire")
    up = down = conns = 0
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            now = tuple(map(int, f.read().split()))
        before = SEEN.get(name, (0, 0))
        if now != before:
            up, down, conns = up + now[0] - before[0], down + now[1] - before[1], conns + 1
        SEEN[name] = now
    return up, down, conns


def machine(base, name, ssh_command):
    home = os.path.join(base, name)
    os.makedirs(home, exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": home, "CLAUDE_CONFIG_DIR": os.path.join(home, "claude"),
            "CCSYNC_CONFIG_DIR": os.path.join(home, "cfg"), "CCSYNC_LIVE_WINDOW_MS": "0",
            "CCSYNC_SSH_COMMAND": ssh_command}


def checkout(path, remote):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["git", "init", "-q", path], check=True)
    subprocess.run(["git", "-C", path, "remote", "add", "origin", remote], check=True)
    return os.path.realpath(path)


def encode(path):
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in path)


def line(i, cwd, text):
    return json.dumps({"parentUuid": None, "type": "user", "uuid": f"{i:08x}-0000-4000-8000-000000000000",
                       "sessionId": SID, "cwd": cwd, "message": {"role": "user", "content": text}},
                      ensure_ascii=False) + "\n"


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def opened_for_reading(binary, args, env, cwd, path):
    """The times the command opened `path` for reading."""
    with tempfile.NamedTemporaryFile("r") as log:
        subprocess.run(["strace", "-f", "-e", "trace=open,openat", "-o", log.name, binary, *args],
                       env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return [l.strip() for l in log
                if path in l and ("O_RDONLY" in l or "O_RDWR" in l) and "ENOENT" not in l]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    binary = os.path.join(ROOT, "target", "release", "ccsync")
    base = tempfile.mkdtemp(prefix="ccsync-wire-")
    d = os.path.join(base, "sshd")
    os.makedirs(d)
    sshd, config = start_sshd(d)
    try:
        ssh_command = f"ssh -F {config}"
        a, b = machine(base, "a", ssh_command), machine(base, "b", ssh_command)
        repo = checkout(os.path.join(base, "a-repo"), "git@github.com:acme/widget.git")
        b_repo = checkout(os.path.join(base, "b-repo"), "https://github.com/acme/widget")
        project = os.path.join(a["CLAUDE_CONFIG_DIR"], "projects", encode(repo))
        os.makedirs(project)
        source = os.path.join(project, f"{SID}.jsonl")
        size, i = 0, 0
        with open(source, "w", encoding="utf-8") as f:
            while size < args.size_mb * 1000 * 1000:
                # Text that compresses as real transcripts do (not to nothing).
                text = " ".join(f"{(i * 2654435761 + k * 40503) % 1000003:x}" for k in range(60))
                l = line(i, repo, text)
                f.write(l)
                size += len(l.encode())
                i += 1
        sync = os.path.join(base, "remote-sync")
        for env, name in [(a, "a"), (b, "b")]:
            sh([binary, "init", f"bench:{sync}", "--name", name], env=env, cwd=base)
        wire(d)
        t = time.perf_counter()
        sh([binary, "push"], env=a, cwd=repo)
        first_push = time.perf_counter() - t
        up, down, conns = wire(d)
        print(f"transcript: {size} bytes, {i} lines")
        print(f"first push: {up + down} bytes on the wire ({conns} connections), {first_push:.2f} s")
        sh([binary, "pull"], env=b, cwd=b_repo)
        up, down, conns = wire(d)
        print(f"first pull: {up + down} bytes on the wire ({conns} connections)")

        stored = dir_bytes(sync)
        with open(source, "a", encoding="utf-8") as f:
            extra = ""
            while len(extra.encode()) < 1000:
                extra += line(i, repo, "one more line of conversation, about a kilobyte in all")
                i += 1
            f.write(extra)
        print(f"appended: {len(extra.encode())} bytes")
        t = time.perf_counter()
        sh([binary, "push"], env=a, cwd=repo)
        elapsed = time.perf_counter() - t
        up, down, conns = wire(d)
        print(f"push after the append: {up + down} bytes on the wire (sent {up}, received {down}; "
              f"{conns} connections), {dir_bytes(sync) - stored} bytes added to the sync dir, {elapsed:.2f} s"
              f"   (target <= 65536 on the wire)")
        installed = os.path.join(b["CLAUDE_CONFIG_DIR"], "projects", encode(b_repo), f"{SID}.jsonl")
        t = time.perf_counter()
        if shutil.which("strace"):
            reads = opened_for_reading(binary, ["pull"], b, b_repo, installed)
        else:
            sh([binary, "pull"], env=b, cwd=b_repo)
            reads = None
        elapsed = time.perf_counter() - t
        up, down, conns = wire(d)
        same = open(installed, "rb").read() == open(source, "rb").read()
        print(f"pull after the append: {up + down} bytes on the wire ({conns} connections), "
              f"{elapsed:.2f} s{' under strace' if reads is not None else ''}; byte-identical: {same}")
        if reads is not None:
            print(f"  transcript opened for reading: {len(reads)} times {reads[:2]}")
        assert same, "the pulled transcript differs"

        if shutil.which("rsync"):
            copy = os.path.join(base, "rsync-copy.jsonl")
            sh(["rsync", "-e", ssh_command, source,
                f"bench:{copy}"])
            with open(source, "a", encoding="utf-8") as f:
                f.write(line(i, repo, "x" * 900))
            wire(d)
            sh(["rsync", "-e", ssh_command, source, f"bench:{copy}"])
            up, down, conns = wire(d)
            print(f"rsync of the file after a 1 KB append: {up + down} bytes on the wire")
        else:
            print("rsync: not installed, not compared")
    finally:
        sshd.terminate()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
