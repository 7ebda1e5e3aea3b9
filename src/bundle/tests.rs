//! The codec's unit and property tests.

use super::*;

mod unit {
    use super::*;

    fn sample() -> Bundle {
        Bundle {
            meta: Meta {
                version: 2,
                session_id: SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap(),
                project_key: ProjectKey::parse("git:github.com/acme/widget").unwrap(),
                original_cwd: r"C:\Users\a\widget\sub".into(),
                relative_cwd: Some(RelPath::parse("sub").unwrap()),
                machine: MachineName::parse("laptop").unwrap(),
                exported_at_ms: 1_715_380_000_000,
                modified_ms: None,
                parts_modified_ms: Default::default(),
                segment: None,
            },
            transcript: b"{\"parentUuid\":null,\"b\":\"\xc3\xa4\\u0000\"}\n{}\n".to_vec(),
            parts: Vec::new(),
        }
    }

    fn with_parts() -> Bundle {
        let mut b = sample();
        b.meta.version = 3;
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        b.parts = vec![
            (
                PartPath::parse("subagents/agent-a1.jsonl").unwrap(),
                b"{\"isSidechain\":true,\"t\":\"\xc3\xa4\"}\n".to_vec(),
            ),
            (PartPath::parse("file-history/abc@v1").unwrap(), binary),
            (
                PartPath::parse("tool-results/empty.txt").unwrap(),
                Vec::new(),
            ),
            (
                PartPath::parse("tasks/list/1.json").unwrap(),
                "{\"subject\":\"日本\"}".repeat(20_000).into_bytes(),
            ),
        ];
        b
    }

    /// Thousands of side files, each with its time: the times' field is
    /// past the 64 KiB other head fields may take, and still reads.
    #[test]
    fn version_4_with_thousands_of_side_files_and_their_times() {
        let mut b = sample();
        b.meta.version = 4;
        b.meta.modified_ms = Some(1_763_628_000_123);
        b.parts = (0..3000)
            .map(|i| {
                let path = PartPath::parse(&format!("file-history/5d41402abc4b2a76@v{i}")).unwrap();
                (path, format!("backup {i}").into_bytes())
            })
            .collect();
        b.meta.parts_modified_ms = b
            .parts
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.clone(), 1_763_600_000_000 + i as u64))
            .collect();
        let bytes = b.to_bytes().unwrap();
        assert!(bytes.len() > 1 << 17);
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
    }

    #[test]
    fn version_3_carries_parts_text_and_binary() {
        let b = with_parts();
        let bytes = b.to_bytes().unwrap();
        assert!(bytes.starts_with(b"{\"_schemaVersion\":3,"));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"path\":\"file-history/abc@v1\",\"encoding\":\"base64\""));
        assert!(text.contains("\"path\":\"tasks/list/1.json\",\"encoding\":\"utf8\""));
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
        // Field order inside a part may vary, but data streams: path and
        // encoding first.
        let swapped = text.replacen(
            "{\"path\":\"subagents/agent-a1.jsonl\",\"encoding\":\"utf8\",",
            "{\"encoding\":\"utf8\",\"path\":\"subagents/agent-a1.jsonl\",",
            1,
        );
        assert_eq!(Bundle::decode(swapped.as_bytes()).unwrap(), b);
    }

    #[test]
    fn bad_parts_are_refused() {
        let good = String::from_utf8(with_parts().to_bytes().unwrap()).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("subagents/agent-a1.jsonl", "../../../etc/x"),
                "side file path",
            ),
            (
                good.replace("subagents/agent-a1.jsonl", "/etc/passwd"),
                "side file path",
            ),
            (
                good.replace("subagents/agent-a1.jsonl", "subagents/../../x"),
                "side file path",
            ),
            (
                good.replace("subagents/agent-a1.jsonl", "memory/MEMORY.md"),
                "side file path",
            ),
            (
                good.replace("tool-results/empty.txt", "file-history/abc@v1"),
                "twice",
            ),
            (good.replace("\"size\":0", "\"size\":1"), "says 1 bytes"),
            (
                good.replace("\"encoding\":\"base64\"", "\"encoding\":\"hex\""),
                "encoding",
            ),
            (
                good.replace("\"encoding\":\"base64\"", "\"encoding\":\"utf8\""),
                "SHA-256",
            ),
            (good.replace("AAECAwQF", "AA*CAwQF"), "base64"),
            (
                good.replace(",\"size\":0", ",\"extra\":1,\"size\":0"),
                "unknown field `extra`",
            ),
            (
                good.replacen(
                    "{\"path\":\"subagents/agent-a1.jsonl\",\"encoding\":\"utf8\",",
                    "{\"path\":\"subagents/agent-a1.jsonl\",",
                    1,
                )
                .replacen(
                    "\\n\",\"size\"",
                    "\\n\",\"encoding\":\"utf8\",\"size\"",
                    1,
                ),
                "must come before `data`",
            ),
            (
                good.replace("\"_schemaVersion\":3", "\"_schemaVersion\":2"),
                "not part of version 2",
            ),
            (
                good.replace("\"_schemaVersion\":3", "\"_schemaVersion\":1"),
                "not part of version 1",
            ),
            (good.replacen("\"parts\":[", "\"partz\":[", 1), "too long"),
            (
                good.replacen("\"parts\":[", "\"partz\":[],\"parts\":[", 1),
                "unknown field `partz`",
            ),
            (
                good.replacen("\"jsonl\"", "\"parts\":[],\"jsonl\"", 1),
                "duplicate field `parts`",
            ),
        ];
        for (bytes, want) in cases {
            let err = Bundle::decode(bytes.as_bytes())
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let without = good.replacen("\"jsonl\"", "\"x\":0,\"jsonl\"", 1);
        assert!(Bundle::decode(without.as_bytes()).is_err());
        let mut v3_without_parts = sample();
        v3_without_parts.meta.version = 3;
        let text = String::from_utf8(v3_without_parts.to_bytes().unwrap()).unwrap();
        let err = Bundle::decode(
            text.replace("\"_schemaVersion\":2", "\"_schemaVersion\":3")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `parts`"), "{err}");
    }

    #[test]
    fn round_trip_and_field_order() {
        let b = sample();
        let bytes = b.to_bytes().unwrap();
        assert!(bytes.starts_with(b"{\"_schemaVersion\":2,"));
        let jsonl_at = bytes.windows(8).position(|w| w == b"\"jsonl\":").unwrap();
        let sha_at = bytes.windows(9).position(|w| w == b"\"sha256\":").unwrap();
        assert!(
            jsonl_at < sha_at,
            "checksum follows the transcript so it can be streamed"
        );
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
    }

    #[test]
    fn refusals() {
        let good = String::from_utf8(sample().to_bytes().unwrap()).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty"),
            (b"  \n".to_vec(), "empty"),
            (good.as_bytes()[..good.len() / 2].to_vec(), "not valid JSON"),
            (b"[1,2]".to_vec(), "not a JSON object"),
            (b"\"x\"".to_vec(), "not a JSON object"),
            (b"{}".to_vec(), "no `_schemaVersion`"),
            (b"{\"_schemaVersion\":5}".to_vec(), "version 5"),
            (b"{\"_schemaVersion\":\"1\"}".to_vec(), "version \"1\""),
            (b"\x1f\x8b\x08\x00".to_vec(), "gzip"),
            (
                good.replace("\"laptop\"", "\"../x\"").into_bytes(),
                "machineName",
            ),
            (
                good.replace("5c0375b4-57a5", "../../../etc").into_bytes(),
                "sessionId",
            ),
            (
                good.replace("\"sub\"", "\"../../x\"").into_bytes(),
                "relativeCwd",
            ),
            (
                good.replace("\"lineCount\":2", "\"lineCount\":3")
                    .into_bytes(),
                "lineCount",
            ),
            (
                good.replace("\"lineCount\":2", "\"lineCount\":\"2\"")
                    .into_bytes(),
                "not those of a version 2",
            ),
            (good.replace("{}\\n", "{} \\n").into_bytes(), "SHA-256"),
            (
                good.replace("\"jsonl\"", "\"extra\":1,\"jsonl\"")
                    .into_bytes(),
                "unknown field `extra`",
            ),
            (
                good.replace("git:github.com", "path:").into_bytes(),
                "projectKey",
            ),
        ];
        for (bytes, want) in cases {
            let err = Bundle::decode(&bytes).expect_err(want).to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }

    #[test]
    fn v1_as_published() {
        let v1 = br#"{ "_schemaVersion": 1, "sessionId": "5c0375b4-57a5-4f26-b12d-d022ee4e51b7",
            "projectKey": "git:https://github.com/you/myapp.git",
            "originalCwd": "C:\\Users\\you\\code\\myapp", "machineName": "desktop",
            "exportedAt": 1715380000000, "lineCount": 2, "jsonl": "{\"a\":1}\n{\"b\":2}" }"#;
        let b = Bundle::decode(v1).unwrap();
        assert_eq!(b.meta.version, 1);
        assert_eq!(b.meta.project_key.as_str(), "git:github.com/you/myapp");
        assert_eq!(b.meta.original_cwd, r"C:\Users\you\code\myapp");
        assert_eq!(b.transcript, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(b.meta.relative_cwd, None);
    }

    /// Large bundles take the two-thread path both ways.
    #[test]
    fn large_bundles_round_trip_through_the_pipeline() {
        let mut b = sample();
        b.transcript = "{\"t\":\"ä \\\"q\\\" 日本\"}\n"
            .repeat(200_000)
            .into_bytes();
        assert!(b.transcript.len() as u64 > PIPELINE_MIN);
        let bytes = b.to_bytes().unwrap();
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
        let mut damaged = bytes.clone();
        let at = damaged.len() / 2;
        damaged[at] = b'X';
        assert!(Bundle::decode(&damaged).is_err());
    }

    /// A writer that fails mid-way: its error is the one reported.
    #[test]
    fn a_failing_writer_is_reported() {
        struct Full(usize);
        impl std::io::Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut b = sample();
        b.transcript = "{}\n".repeat(1_000_000).into_bytes();
        let err = b.encode(Full(100_000)).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        let bytes = b.to_bytes().unwrap();
        let err = read(bytes.as_slice(), &mut Full(100_000), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[test]
    fn a_v1_line_count_that_disagrees_still_reencodes() {
        // Found by the fuzzer: the declared count must not survive re-encoding.
        let v1 = br#"{"_schemaVersion":1,"sessionId":"5c0375b4-57a5-4f26-b12d-d022ee4e51b7",
            "projectKey":"name:x","originalCwd":"/x","machineName":"m","exportedAt":1,
            "lineCount":7,"jsonl":"{}\n"}"#;
        let b = Bundle::decode(v1).unwrap();
        assert_eq!(b.transcript, b"{}\n");
        assert_eq!(
            Bundle::decode(&b.to_bytes().unwrap()).unwrap().transcript,
            b"{}
"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn bundle() -> impl Strategy<Value = Bundle> {
        (
            prop::collection::vec("[^\n]{0,40}", 1..6),
            "[A-Za-z0-9._-]{1,64}".prop_filter("a name", |m| m != "." && m != ".."),
            "\\PC{1,60}",
            prop::collection::vec("[a-z0-9 ._-]{1,8}", 0..3),
            any::<u64>(),
            prop::collection::btree_map(
                "(subagents|tool-results|file-history|tasks)/[a-z0-9@._-]{1,12}",
                prop::collection::vec(any::<u8>(), 0..200),
                0..4,
            ),
        )
            .prop_map(|(lines, machine, cwd, rel, at, parts)| {
                let parts: Vec<(PartPath, Vec<u8>)> = parts
                    .into_iter()
                    .filter_map(|(p, bytes)| Some((PartPath::parse(&p).ok()?, bytes)))
                    .collect();
                let transcript: Vec<u8> = lines
                    .iter()
                    .flat_map(|l| format!("{l}\n").into_bytes())
                    .collect();
                Bundle {
                    meta: Meta {
                        version: if parts.is_empty() { 2 } else { 3 },
                        session_id: SessionId::new_random(),
                        project_key: ProjectKey::parse("git:example.org/x/y").unwrap(),
                        original_cwd: cwd,
                        relative_cwd: Some(RelPath::parse(&rel.join("/")).unwrap_or_default()),
                        machine: MachineName::parse(&machine).unwrap(),
                        exported_at_ms: at,
                        modified_ms: None,
                        parts_modified_ms: Default::default(),
                        segment: None,
                    },
                    transcript,
                    parts,
                }
            })
            .prop_filter("valid cwd", |b| !b.meta.original_cwd.contains('\0'))
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(b in bundle()) {
            let bytes = b.to_bytes().unwrap();
            prop_assert_eq!(Bundle::decode(&bytes).unwrap(), b);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Bundle::decode(&bytes);
        }

        /// Damage to a valid bundle is refused or harmless, never a panic,
        /// and what is accepted is whole lines.
        #[test]
        fn damaged_bundles_never_panic(b in bundle(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = b.to_bytes().unwrap();
            let i = at.index(bytes.len());
            if cut { bytes.truncate(i) } else { bytes[i] = byte }
            if let Ok(d) = Bundle::decode(&bytes) {
                prop_assert!(d.transcript.is_empty() || d.transcript.ends_with(b"\n"));
            }
        }
    }
}

#[test]
fn an_unknown_version_is_said_before_what_fails_after_it() {
    for bytes in [
        &br#"{"_schemaVersion":6,"jsonl":1}"#[..],
        br#"{"_schemaVersion":99,"parts":{"x":1},"jsonl":"a"}"#,
        br#"{"_schemaVersion":"2","jsonl":"#,
    ] {
        let e = Bundle::decode(bytes).unwrap_err();
        assert!(matches!(e, BundleError::UnknownVersion(_)), "{e}");
        assert!(e.to_string().contains("upgrade ccsync"), "{e}");
    }
    // A known version with a broken field says what is broken.
    let e = Bundle::decode(br#"{"_schemaVersion":4,"jsonl":1}"#).unwrap_err();
    assert!(matches!(e, BundleError::Syntax(_)), "{e}");
}
