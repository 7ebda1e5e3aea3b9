//! Nobody has to remember to push: `resume` wraps the client, and hooks
//! in the client's settings push a session that ends (issue 13).

use crate::env::*;
use crate::real_client::clients;

/// The `uuid` and `parentUuid` of each line.
fn links(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["uuid"].as_str().unwrap_or_default().to_owned(),
                v["parentUuid"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `ccsync resume` pulls before the client loads the session (the
/// client's new line follows the pulled last line), runs it where the
/// session belongs here, pushes after it exits (also when it fails), and
/// exits with the client's status.
#[test]
fn resume_pulls_first_runs_the_client_and_pushes_after() {
    for (var, client) in clients() {
        let Pair {
            w: _w,
            a,
            a_repo,
            b,
            b_repo,
        } = pair();
        let full = transcript(SID, &a_repo, 6, "resumed");
        let half = ccsync::claude::transcript::complete_len(&full[..full.len() * 2 / 3]);
        a.write_session(&a_repo, SID, &full[..half]);
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["pull"]).success();
        a.write_session(&a_repo, SID, &full);
        a.run(&a_repo, &["push"]).success();

        let marker = format!("continued-on-b-{var}");
        let out = b
            .cmd(&b_repo)
            .env("CCSYNC_CLAUDE", &client)
            .args(["resume", &SID[..8], "--", "-p", &marker])
            .assert();
        // The client stops for want of a login, after appending the prompt.
        let code = out.get_output().status.code();
        assert_eq!(code, Some(1), "{var}: {}", stderr(&out));
        let here = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
        assert!(
            here.starts_with(&full),
            "{var}: not pulled before the client ran"
        );
        let text = String::from_utf8_lossy(&here);
        let line = text
            .lines()
            .find(|l| l.contains(&marker) && l.contains("\"type\":\"user\""))
            .unwrap_or_else(|| panic!("{var}: the client did not resume it: {}", stderr(&out)));
        let parent = serde_json::from_str::<serde_json::Value>(line).unwrap()["parentUuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let last_pulled = links(&full).last().unwrap().0.clone();
        assert_eq!(
            parent, last_pulled,
            "{var}: the client continued from an older line"
        );

        // Pushed when the client exited: A gets the new line.
        a.run(&a_repo, &["pull"]).success();
        let there = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
        assert!(
            String::from_utf8_lossy(&there).contains(&marker),
            "{var}: not pushed"
        );
    }
}

#[test]
fn resume_without_a_client_says_how_to_name_one() {
    let Pair {
        w: _w, a, a_repo, ..
    } = pair();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "x"));
    let out = a
        .cmd(&a_repo)
        .env("CCSYNC_CLAUDE", "/no/such/claude")
        .args(["resume"])
        .assert()
        .code(1);
    assert!(stderr(&out).contains("CCSYNC_CLAUDE"), "{}", stderr(&out));
}
