//! Processes on this machine.

/// Whether a process with id `pid` runs on this machine now. `true` where
/// that cannot be told (Windows): callers take it as "maybe running".
pub fn exists(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        // A process of another user answers EPERM: not the one we mean
        // (ours ran as us), so its id was reused.
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_exists_and_a_reaped_one_does_not() {
        assert!(super::exists(std::process::id()));
        assert!(!super::exists(0));
        #[cfg(unix)]
        {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            assert!(!super::exists(pid));
        }
    }
}
