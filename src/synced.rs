//! Folders a sync service already keeps in step across machines, found
//! under a home directory: where a sync dir fits without setting anything
//! else up. Only their usual places are looked at; nothing is created.

use std::path::{Path, PathBuf};

/// A folder some service syncs, and which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFolder {
    pub service: &'static str,
    pub path: PathBuf,
}

/// Where Syncthing keeps its config, newest layout first: Linux
/// (`$XDG_STATE_HOME` since 1.27, `$XDG_CONFIG_HOME` before), macOS,
/// Windows.
const SYNCTHING_CONFIGS: [&str; 4] = [
    ".local/state/syncthing/config.xml",
    ".config/syncthing/config.xml",
    "Library/Application Support/Syncthing/config.xml",
    "AppData/Local/Syncthing/config.xml",
];

/// The synced folders under `home`, each once, in a stable order
/// (services as listed here, folders by name).
pub fn find(home: &Path) -> Vec<SyncedFolder> {
    let mut found = Vec::new();
    let mut add = |service: &'static str, path: PathBuf| {
        if path.is_dir() && !found.iter().any(|f: &SyncedFolder| f.path == path) {
            found.push(SyncedFolder { service, path });
        }
    };
    add("Dropbox", home.join("Dropbox"));
    add("Dropbox", home.join("Library/CloudStorage/Dropbox"));
    add(
        "iCloud Drive",
        home.join("Library/Mobile Documents/com~apple~CloudDocs"),
    );
    add("iCloud Drive", home.join("iCloudDrive"));
    for dir in starting_with(home, "OneDrive") {
        add("OneDrive", dir);
    }
    for dir in starting_with(&home.join("Library/CloudStorage"), "OneDrive-") {
        add("OneDrive", dir);
    }
    add("Google Drive", home.join("Google Drive"));
    for dir in starting_with(&home.join("Library/CloudStorage"), "GoogleDrive-") {
        add("Google Drive", dir);
    }
    for config in SYNCTHING_CONFIGS {
        if let Ok(xml) = std::fs::read_to_string(home.join(config)) {
            for path in syncthing_folders(&xml) {
                add("Syncthing", expand_home(&path, home));
            }
        }
    }
    found
}

/// The folders under `dir` whose names start with `prefix`, sorted.
fn starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// `~/x` as `home/x`; Syncthing writes paths that way by default.
fn expand_home(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/").or(path.strip_prefix("~\\")) {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_path_buf(),
        None => PathBuf::from(path),
    }
}

/// The `path` of every `<folder …>` element in a Syncthing config.xml.
/// Syncthing writes this file itself, one element per line with
/// double-quoted attributes, so a scan for the attribute is enough.
pub fn syncthing_folders(xml: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<folder ") {
        let tag = &rest[start..];
        let end = tag.find('>').unwrap_or(tag.len());
        if let Some(path) = attribute(&tag[..end], "path") {
            paths.push(path);
        }
        rest = &tag[end..];
    }
    paths
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    let raw = &tag[start..start + len];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn mkdir(home: &Path, rel: &str) -> PathBuf {
        let path = home.join(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    #[test]
    fn nothing_in_an_empty_home() {
        assert_eq!(find(home().path()), vec![]);
    }

    #[test]
    fn every_service_in_its_usual_place() {
        let tmp = home();
        let h = tmp.path();
        let dropbox = mkdir(h, "Dropbox");
        let icloud = mkdir(h, "Library/Mobile Documents/com~apple~CloudDocs");
        let onedrive = mkdir(h, "OneDrive - Acme");
        let personal = mkdir(h, "OneDrive");
        let gdrive = mkdir(h, "Library/CloudStorage/GoogleDrive-me@example.com");
        let shared = mkdir(h, "Sync & Share");
        let abs = mkdir(h, "elsewhere/photos");
        std::fs::write(h.join("OneDrive.txt"), "a file, not a folder").unwrap();
        mkdir(h, ".local/state/syncthing");
        std::fs::write(
            h.join(".local/state/syncthing/config.xml"),
            format!(
                "<configuration version=\"37\">\n    \
                 <folder id=\"default\" label=\"Default\" path=\"~/Sync &amp; Share\" type=\"sendreceive\">\n    \
                 </folder>\n    \
                 <folder id=\"p\" label=\"Photos\" path=\"{}\" type=\"sendreceive\"></folder>\n    \
                 <folder id=\"gone\" path=\"~/not-there\"></folder>\n\
                 </configuration>\n",
                abs.display()
            ),
        )
        .unwrap();
        let found: Vec<(&str, PathBuf)> =
            find(h).into_iter().map(|f| (f.service, f.path)).collect();
        assert_eq!(
            found,
            vec![
                ("Dropbox", dropbox),
                ("iCloud Drive", icloud),
                ("OneDrive", personal),
                ("OneDrive", onedrive),
                ("Google Drive", gdrive),
                ("Syncthing", shared),
                ("Syncthing", abs),
            ]
        );
    }

    #[test]
    fn a_folder_two_services_name_is_listed_once() {
        let tmp = home();
        let h = tmp.path();
        let dropbox = mkdir(h, "Dropbox");
        mkdir(h, "Library/Application Support/Syncthing");
        std::fs::write(
            h.join("Library/Application Support/Syncthing/config.xml"),
            "<folder id=\"x\" path=\"~/Dropbox\"></folder>",
        )
        .unwrap();
        assert_eq!(
            find(h),
            vec![SyncedFolder {
                service: "Dropbox",
                path: dropbox
            }]
        );
    }

    #[test]
    fn syncthing_config_paths() {
        let xml = "<folder id=\"a\" path=\"/srv/a\"/>\n<device id=\"d\" name=\"x\"></device>\n\
                   <folder label=\"no path\"></folder>\n<folder id=\"b\" path=\"C:\\Users\\me\\Sync\">";
        assert_eq!(
            syncthing_folders(xml),
            vec!["/srv/a", "C:\\Users\\me\\Sync"]
        );
        assert_eq!(syncthing_folders("not xml at all"), Vec::<String>::new());
    }
}
