//! The S3 and WebDAV transports against real servers on 127.0.0.1:
//! moto_server (S3) and wsgidav (WebDAV), from the venv `.ci/run` makes
//! (`CCSYNC_TEST_VENV`). Requests are counted in the servers' own logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::*;
use crate::sshd::free_port;

const NEEDS: &str = "needs moto_server / wsgidav (.ci/run installs them)";
const FOLDER: &str = "git=github.com_acme_widget";

pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub webdav: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_bin(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("CCSYNC_TEST_VENV")?;
    let bin = Path::new(&venv).join("bin").join(name);
    bin.is_file().then_some(bin)
}

/// wsgidav as a server that refuses `PROPFIND` with `Depth: infinity`
/// (403, `propfind-finite-depth`), as Nextcloud does by default.
const SHALLOW_WSGIDAV: &str = "import sys, wsgidav.request_server as r
init = r.RequestServer.__init__
def shallow(self, *a, **k):
    init(self, *a, **k)
    self.allow_propfind_infinite = False
r.RequestServer.__init__ = shallow
from wsgidav.server.server_cli import run
sys.argv[0] = 'wsgidav'
run()
";

impl Server {
    /// `shallow`: a WebDAV server that lists one folder per request.
    fn start_as(webdav: bool, shallow: bool) -> Option<Self> {
        let program = if webdav { "wsgidav" } else { "moto_server" };
        let Some(bin) = venv_bin(program) else {
            skip_or_fail(&format!(
                "object store tests: no {program} in $CCSYNC_TEST_VENV/bin (.ci/run installs it)"
            ));
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ccsync-objects-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = if shallow {
            let mut cmd = Command::new(bin.with_file_name("python"));
            cmd.args(["-c", SHALLOW_WSGIDAV]);
            cmd
        } else {
            Command::new(bin)
        };
        if webdav {
            let root = dir.path().join("root");
            std::fs::create_dir(&root).unwrap();
            let config = serde_json::json!({
                "host": "127.0.0.1",
                "port": port,
                "provider_mapping": { "/": root },
                "simple_dc": { "user_mapping": { "*": { "me": { "password": "pw" } } } },
                "http_authenticator": {
                    "accept_basic": true, "accept_digest": false, "default_to_digest": false
                },
                "verbose": 3,
                "server": "cheroot",
            });
            let path = dir.path().join("wsgidav.json");
            std::fs::write(&path, config.to_string()).unwrap();
            cmd.arg(format!("--config={}", path.display()));
        } else {
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self {
            child,
            dir,
            port,
            webdav,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{program} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        if !webdav {
            assert!(
                server
                    .raw("PUT", "/bucket", b"")
                    .starts_with("HTTP/1.1 200")
            );
        }
        Some(server)
    }

    /// One unsigned request (moto does not check signatures), for what
    /// ccsync itself would never write.
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    pub fn location(&self) -> String {
        if self.webdav {
            format!("webdav://127.0.0.1:{}/sync", self.port)
        } else {
            "s3://bucket/team".to_owned()
        }
    }

    /// Where wsgidav keeps the sync dir on disk.
    pub fn dav_root(&self) -> PathBuf {
        self.dir.path().join("root").join("sync")
    }

    /// Requests the server has logged so far.
    pub fn requests(&self) -> usize {
        // Both servers log a request after answering it.
        std::thread::sleep(Duration::from_millis(500));
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                if self.webdav {
                    l.contains("INFO") && l.contains(" - me - ")
                } else {
                    l.contains("\" 2") || l.contains("\" 4") || l.contains("\" 3")
                }
            })
            .count()
    }

    pub fn run(&self, m: &Machine, cwd: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
        let mut cmd = m.cmd(cwd);
        if self.webdav {
            cmd.env("CCSYNC_WEBDAV_USER", "me")
                .env("CCSYNC_WEBDAV_PASSWORD", "pw");
        } else {
            cmd.env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1");
        }
        cmd.args(args).assert()
    }
}

struct Setup {
    server: Server,
    p: Pair,
}

fn setup(webdav: bool) -> Option<Setup> {
    setup_as(webdav, false)
}

fn setup_as(webdav: bool, shallow: bool) -> Option<Setup> {
    let server = Server::start_as(webdav, shallow)?;
    let p = pair();
    let location = server.location();
    server
        .run(&p.a, &p.w.root(), &["init", &location, "--name", "a"])
        .success();
    server
        .run(&p.b, &p.w.root(), &["init", &location, "--name", "b"])
        .success();
    Some(Setup { server, p })
}

fn sid(i: usize) -> String {
    format!("{i:08x}-2222-4333-8444-555555555555")
}

/// Every session moves byte for byte, an append travels as a segment, and
/// a push with nothing changed costs a handful of requests.
fn sessions_move_byte_for_byte(webdav: bool, shallow: bool) {
    let Some(Setup { server, p }) = setup_as(webdav, shallow) else {
        return;
    };
    let n = 200;
    for i in 0..n {
        let id = sid(i);
        let tag = format!("objects{i}");
        p.a.write_session(&p.a_repo, &id, &transcript(&id, &p.a_repo, 3 + i % 7, &tag));
    }
    let started = Instant::now();
    let out = server
        .run(&p.a, &p.a_repo, &["push", "--all", "--json"])
        .success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), n);
    eprintln!("push of {n} sessions: {:?}", started.elapsed());

    let before = server.requests();
    let out = server
        .run(&p.a, &p.a_repo, &["push", "--all", "--json"])
        .success();
    assert_eq!(stdout_json(&out)["unchanged"].as_array().unwrap().len(), n);
    let noop = server.requests() - before;
    eprintln!("no-op push over {n} sessions: {noop} requests");
    // S3 lists a prefix in one request (a page per 1000 keys), WebDAV in
    // one PROPFIND with Depth: infinity; where that is refused, the refusal
    // and then a PROPFIND per folder: the root, ccsync/, machines/ and one
    // project.
    let most = if shallow { 5 } else { 1 };
    assert!(
        noop <= most,
        "a push with nothing changed cost {noop} requests"
    );

    let started = Instant::now();
    let out = server.run(&p.b, &p.b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"].as_array().unwrap().len(), n);
    eprintln!("pull of {n} sessions: {:?}", started.elapsed());
    for i in 0..n {
        let id = sid(i);
        assert_eq!(
            std::fs::read(p.b.transcript(&p.b_repo, &id)).unwrap(),
            std::fs::read(p.a.transcript(&p.a_repo, &id)).unwrap(),
            "{id}"
        );
    }

    // An append goes up as a segment; the pull brings it.
    let id = sid(7);
    p.a.append(&p.a_repo, &id, b"{\"type\":\"user\",\"x\":1}\n");
    server.run(&p.a, &p.a_repo, &["push", "--all"]).success();
    if webdav {
        let seg = server
            .dav_root()
            .join(FOLDER)
            .join(format!("{id}-a.1.ccseg"));
        assert!(seg.is_file(), "{} is missing", seg.display());
    }
    server.run(&p.b, &p.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, &id)).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, &id)).unwrap()
    );
}

#[test]
#[ignore = "needs moto_server / wsgidav (.ci/run installs them)"]
fn s3_sessions_move_byte_for_byte_and_a_noop_push_is_cheap() {
    sessions_move_byte_for_byte(false, false);
}

#[test]
#[ignore = "needs moto_server / wsgidav (.ci/run installs them)"]
fn webdav_sessions_move_byte_for_byte_and_a_noop_push_is_cheap() {
    sessions_move_byte_for_byte(true, false);
}

/// A WebDAV server that refuses to list in one request is listed folder by
/// folder, and loses nothing by it.
#[test]
#[ignore = "needs moto_server / wsgidav (.ci/run installs them)"]
fn webdav_refusing_deep_listings_is_listed_folder_by_folder() {
    sessions_move_byte_for_byte(true, true);
}

/// Keys no directory could hold are named and left alone; names that are
/// not ccsync objects are passed over; the session beside them moves.
#[test]
#[ignore = "needs moto_server / wsgidav (.ci/run installs them)"]
fn s3_hostile_keys_are_refused() {
    let _ = NEEDS;
    let Some(Setup { server, p }) = setup(false) else {
        return;
    };
    let bytes = transcript(SID, &p.a_repo, 5, "hostile");
    p.a.write_session(&p.a_repo, SID, &bytes);
    server.run(&p.a, &p.a_repo, &["push"]).success();
    for key in [
        format!("/bucket/team/{FOLDER}/%2E%2E/%2E%2E/{SID2}-evil.ccsync"),
        format!("/bucket/team/{FOLDER}/deeper/{SID2}-evil.ccsync"),
        format!("/bucket/team/{FOLDER}/notes.txt"),
        "/bucket/team/README".to_owned(),
    ] {
        let reply = server.raw("PUT", &key, b"not a bundle");
        assert!(reply.starts_with("HTTP/1.1 200"), "{key}: {reply}");
    }
    // Exit 3: something was skipped, and says so.
    let out = server.run(&p.b, &p.b_repo, &["pull", "--json"]).code(3);
    assert_eq!(stdout_json(&out)["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        bytes
    );
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("climbs out of its folder"), "{err}");
    assert!(err.contains("deeper"), "{err}");
    assert!(
        !err.contains("notes.txt") && !err.contains("README"),
        "{err}"
    );
    assert!(!p.b.transcript(&p.b_repo, SID2).exists());
}

#[test]
#[ignore = "needs moto_server / wsgidav (.ci/run installs them)"]
fn webdav_oversized_and_foreign_files_are_refused() {
    let Some(Setup { server, p }) = setup(true) else {
        return;
    };
    let bytes = transcript(SID, &p.a_repo, 5, "hostile");
    p.a.write_session(&p.a_repo, SID, &bytes);
    server.run(&p.a, &p.a_repo, &["push"]).success();
    let folder = server.dav_root().join(FOLDER);
    std::fs::write(folder.join("notes.txt"), b"hi").unwrap();
    std::fs::write(server.dav_root().join("README"), b"hi").unwrap();
    let big = std::fs::File::create(folder.join(format!("{SID2}-evil.ccsync"))).unwrap();
    big.set_len(ccsync::bundle::MAX_BUNDLE_BYTES + 1).unwrap();
    let out = server.run(&p.b, &p.b_repo, &["pull", "--json"]);
    let out = out.get_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("over the 1024 MiB"), "{err}");
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        bytes
    );
    assert!(!p.b.transcript(&p.b_repo, SID2).exists());

    // A killed upload's temp file is passed over, and this machine's next
    // push removes it.
    let temp = folder.join(".ccsync-a-00000000000000a1.tmp");
    std::fs::write(&temp, b"half").unwrap();
    server.run(&p.b, &p.b_repo, &["pull"]).code(3);
    assert!(temp.exists(), "another machine's temp is left alone");
    server.run(&p.a, &p.a_repo, &["push"]).success();
    assert!(!temp.exists());
}
