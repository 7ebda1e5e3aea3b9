//! Reading blobs out of the cache with one `git cat-file --batch`: each is
//! asked for, then streamed to its reader straight from git's stdout, so
//! memory does not grow with its size.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use super::run::Git;

/// A running `git cat-file --batch`. Dropped, it is ended.
pub(super) struct Blobs {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Blobs {
    pub fn start(git: &Git) -> io::Result<Self> {
        let mut child = git
            .command(&["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped"));
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// Asks for the object `spec` names (an id, `ref`, `rev:path`): its
    /// id, type and size, or `None` when there is no such object. Its
    /// bytes must then be taken with `body`.
    pub fn ask(&mut self, spec: &str) -> Result<Option<(String, String, u64)>, String> {
        let stdin = self.stdin.as_mut().ok_or("git cat-file has ended")?;
        writeln!(stdin, "{spec}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot ask git for it: {e}"))?;
        let mut header = String::new();
        self.stdout
            .read_line(&mut header)
            .map_err(|e| format!("cannot read it from git: {e}"))?;
        let words: Vec<&str> = header.split_whitespace().collect();
        match words.as_slice() {
            [oid, kind, size] => match size.parse() {
                Ok(size) => Ok(Some(((*oid).to_owned(), (*kind).to_owned(), size))),
                Err(_) => Err(self.out_of_step(&header)),
            },
            [_, "missing"] => Ok(None),
            _ => Err(self.out_of_step(&header)),
        }
    }

    fn out_of_step(&mut self, header: &str) -> String {
        // No later answer can be trusted.
        self.stdin = None;
        format!("git answered what was not asked ({})", header.trim())
    }

    /// Streams the `size` bytes of the object just asked for to `read`,
    /// and reads them to their end whatever `read` takes, so the next
    /// answer starts in step.
    pub fn body(&mut self, size: u64, read: impl FnOnce(&mut dyn Read)) -> Result<(), String> {
        let mut body = (&mut self.stdout).take(size);
        read(&mut body);
        let rest = io::copy(&mut body, &mut io::sink());
        let mut newline = [0u8; 1];
        match rest.and_then(|_| self.stdout.read_exact(&mut newline)) {
            Ok(()) if newline == *b"\n" => Ok(()),
            _ => {
                self.stdin = None;
                Err("git broke off while sending it".into())
            }
        }
    }

    /// The object just asked for, in memory, if it is at most `cap` bytes;
    /// a bigger one is not read (and this reader is done).
    pub fn small(&mut self, size: u64, cap: u64) -> Result<Vec<u8>, String> {
        if size > cap {
            self.stdin = None;
            return Err(format!("it is {size} bytes, over {cap}"));
        }
        let mut bytes = Vec::new();
        let mut failed = None;
        self.body(size, |r| failed = r.read_to_end(&mut bytes).err())?;
        match failed {
            Some(e) => Err(e.to_string()),
            None => Ok(bytes),
        }
    }

    /// Streams blob `oid` of `size` bytes (as the listing said) to `read`.
    pub fn read(
        &mut self,
        oid: &str,
        size: u64,
        read: impl FnOnce(&mut dyn Read),
    ) -> Result<(), String> {
        match self.ask(oid)? {
            Some((got, kind, len)) if got == oid && kind == "blob" && len == size => {
                self.body(len, read)
            }
            Some((_, _, len)) => {
                self.body(len, |_| {})?;
                Err("git did not have it as listed".into())
            }
            None => Err("it is not in the git cache".into()),
        }
    }
}

impl Drop for Blobs {
    fn drop(&mut self) {
        // Closing stdin ends it; one out of step is killed.
        let stopped = self.stdin.take().is_none();
        if stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
