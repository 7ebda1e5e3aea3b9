//! The client's own registry of running sessions (FACTS.md): a running
//! client writes `sessions/<pid>.json` (`pid`, `sessionId`, `procStart`, …)
//! and removes it when it exits. It does not hold the transcript open at
//! every moment (not while SessionStart hooks run), and macOS has no
//! `/proc` to look in, so this is the first sign that a session is live.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// Sessions registered by a client process that is still running.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    running: HashMap<String, u32>,
    /// When each running session's client started (`startedAt`, Unix ms).
    started: HashMap<String, u64>,
}

impl Registry {
    /// Reads `<config>/sessions/*.json`. An entry counts when its process
    /// is alive and, where the start time can be read (`/proc`), started
    /// when the entry says: a pid reused by another process after a crash
    /// left the file behind does not hold a session.
    pub fn scan(config_dir: &Path) -> Self {
        let mut running = HashMap::new();
        let mut started = HashMap::new();
        let Ok(entries) = std::fs::read_dir(config_dir.join("sessions")) else {
            return Self { running, started };
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Small, written whole by the client; a larger one is not its.
            let Ok(bytes) = crate::fsutil::read_capped(&entry.path(), 1 << 16) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let Some(session) = v.get("sessionId").and_then(Value::as_str) else {
                continue;
            };
            let pid = v
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(pid);
            if alive(pid, v.get("procStart")) {
                running.insert(session.to_owned(), pid);
                if let Some(t) = v.get("startedAt").and_then(Value::as_u64) {
                    started.insert(session.to_owned(), t);
                }
            }
        }
        Self { running, started }
    }

    /// Every running session, with when its client started (if it says).
    pub fn sessions(&self) -> Vec<(String, Option<u64>)> {
        let mut out: Vec<(String, Option<u64>)> = self
            .running
            .keys()
            .map(|id| (id.clone(), self.started.get(id).copied()))
            .collect();
        out.sort();
        out
    }

    /// The process running session `id`, if one is registered.
    pub fn running(&self, id: &str) -> Option<u32> {
        self.running.get(id).copied()
    }
}

/// Whether process `pid` exists and, when both are known, started at
/// `proc_start` (clock ticks since boot, field 22 of `/proc/<pid>/stat`).
fn alive(pid: u32, proc_start: Option<&Value>) -> bool {
    if pid == 0 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let want = proc_start.and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        match (want, start_time(&stat)) {
            (Some(want), Some(got)) => want == got,
            _ => true,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = proc_start;
        crate::process::exists(pid)
    }
}

/// Field 22 of `/proc/<pid>/stat`: after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
#[cfg(any(target_os = "linux", test))]
fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields 3 onwards; 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_live_entry_counts_and_a_stale_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("sessions");
        std::fs::create_dir_all(&sessions).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let start = start_time(&stat).unwrap();
        let entry = |id: &str, pid: u32, start: u64| {
            serde_json::json!({"pid": pid, "sessionId": id, "procStart": start.to_string(), "kind": "interactive"})
                .to_string()
        };
        std::fs::write(
            sessions.join(format!("{pid}.json")),
            entry("live", pid, start),
        )
        .unwrap();
        // The same pid, another start: a pid reused after a crash.
        std::fs::write(sessions.join("1.json"), entry("reused", pid, start + 1)).unwrap();
        std::fs::write(
            sessions.join("999999999.json"),
            entry("gone", 999_999_999, 0),
        )
        .unwrap();
        std::fs::write(sessions.join("x.json"), b"not json").unwrap();
        let r = Registry::scan(dir.path());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(r.running("live"), Some(pid));
        assert_eq!(r.running("reused"), None);
        assert_eq!(r.running("gone"), None);
        assert_eq!(Registry::scan(dir.path()).running("live"), None);
    }
}
