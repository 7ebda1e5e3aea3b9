//! ccsync's hooks in the client's user settings (`settings.json`): added
//! beside whatever the user has, recognised by their command, removed
//! exactly. Pure functions on the parsed settings; the command writes.

use serde_json::{Map, Value};

/// What every ccsync hook command contains, and nothing else's does.
pub const MARK: &str = " hook session-";

/// The client events ccsync hooks into, with the `ccsync hook` argument.
pub const EVENTS: [(&str, &str); 2] = [
    ("SessionEnd", "session-end"),
    ("SessionStart", "session-start"),
];

/// Adds a hook running `command(arg)` to each of [`EVENTS`] unless one of
/// ccsync's is there (then its command is brought up to date). Every other
/// key, event and hook stays as it was. Returns whether anything changed.
pub fn install(
    settings: &mut Map<String, Value>,
    command: impl Fn(&str) -> String,
) -> Result<bool, String> {
    let hooks = settings
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("`hooks` is not an object")?;
    let mut changed = false;
    for (event, arg) in EVENTS {
        let wanted = command(arg);
        let groups = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| format!("`hooks.{event}` is not a list"))?;
        let ours = groups.iter_mut().flat_map(hook_list).find(|h| is_ours(h));
        match ours {
            Some(h) if h.get("command").and_then(Value::as_str) == Some(wanted.as_str()) => {}
            Some(h) => {
                h["command"] = Value::String(wanted);
                changed = true;
            }
            None => {
                groups.push(serde_json::json!({
                    "hooks": [{"type": "command", "command": wanted, "timeout": 10}]
                }));
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Removes ccsync's hooks, and the groups, event lists and `hooks` object
/// they leave empty. Returns whether anything changed.
pub fn uninstall(settings: &mut Map<String, Value>) -> bool {
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut changed = false;
    for (event, _) in EVENTS {
        let Some(groups) = hooks.get_mut(event).and_then(Value::as_array_mut) else {
            continue;
        };
        groups.retain_mut(|g| {
            let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) else {
                return true;
            };
            let before = list.len();
            list.retain(|h| !is_ours(h));
            changed |= list.len() != before;
            !(list.is_empty() && before > 0)
        });
        if groups.is_empty() {
            hooks.remove(event);
        }
    }
    if hooks.is_empty() {
        settings.remove("hooks");
    }
    changed
}

/// The command of ccsync's hook for each event, if there is one.
pub fn installed(settings: &Map<String, Value>) -> Vec<(&'static str, Option<String>)> {
    EVENTS
        .iter()
        .map(|(event, _)| {
            let command = settings
                .get("hooks")
                .and_then(|h| h.get(event))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|g| g.get("hooks").and_then(Value::as_array))
                .flatten()
                .find(|h| is_ours(h))
                .and_then(|h| h.get("command").and_then(Value::as_str))
                .map(str::to_owned);
            (*event, command)
        })
        .collect()
}

fn hook_list(group: &mut Value) -> impl Iterator<Item = &mut Value> {
    group
        .get_mut("hooks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn is_ours(hook: &Value) -> bool {
    hook.get("command")
        .and_then(Value::as_str)
        .is_some_and(|c| c.contains("ccsync") && c.contains(MARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    const USERS: &str = r#"{
  "model": "opus",
  "hooks": {
    "SessionStart": [
      {"matcher": "startup", "hooks": [{"type": "command", "command": "echo hi"}]}
    ],
    "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]
  },
  "permissions": {"allow": ["Bash(ls)"]}
}"#;

    #[test]
    fn install_keeps_everything_and_uninstall_takes_exactly_what_it_added() {
        let cmd = |arg: &str| format!("'/usr/bin/ccsync' hook {arg}");
        for text in [USERS, "{}", r#"{"hooks": {}}"#] {
            let original = settings(text);
            let mut s = original.clone();
            assert!(install(&mut s, cmd).unwrap());
            assert!(!install(&mut s, cmd).unwrap(), "twice is once");
            let found = installed(&s);
            assert_eq!(
                found[0].1.as_deref(),
                Some("'/usr/bin/ccsync' hook session-end")
            );
            assert_eq!(
                found[1].1.as_deref(),
                Some("'/usr/bin/ccsync' hook session-start")
            );
            // The user's own hook and keys, in their order.
            let keys: Vec<&String> = s.keys().collect();
            if text == USERS {
                assert_eq!(keys, ["model", "hooks", "permissions"]);
                assert_eq!(
                    s["hooks"]["SessionStart"][0],
                    original["hooks"]["SessionStart"][0]
                );
                assert_eq!(s["hooks"]["Stop"], original["hooks"]["Stop"]);
            }
            // Moved binary: the command follows.
            assert!(install(&mut s, |a| format!("/opt/ccsync hook {a}")).unwrap());
            assert_eq!(
                installed(&s)[0].1.as_deref(),
                Some("/opt/ccsync hook session-end")
            );
            assert!(uninstall(&mut s));
            assert!(!uninstall(&mut s));
            if text == r#"{"hooks": {}}"# {
                assert_eq!(Value::Object(s), serde_json::json!({}));
            } else {
                assert_eq!(s, original, "{text}");
            }
        }
    }

    #[test]
    fn settings_it_cannot_merge_into_are_refused() {
        let mut s = settings(r#"{"hooks": []}"#);
        assert!(install(&mut s, |a| a.to_owned()).is_err());
        let mut s = settings(r#"{"hooks": {"SessionEnd": {}}}"#);
        assert!(install(&mut s, |a| a.to_owned()).is_err());
    }
}
