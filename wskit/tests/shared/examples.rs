//! Building and running the examples from a test: shared by `tests/it` (every example) and
//! `tests/browser.rs` (the browser demos), each of which includes this file as a module.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// `cargo build -p wskit` with `selection` (`["--examples"]`, or `["--example", NAME, ...]`)
/// in the profile of the calling test binary (`target/PROFILE/deps/NAME-HASH`), and where each
/// example's executable went.
pub(crate) fn build_examples(selection: &[&str]) -> HashMap<String, PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-p", "wskit"])
        .args(selection)
        .arg("--message-format=json-render-diagnostics");
    // Not the variables cargo set for this test: build scripts that watch them (ring watches
    // CARGO_MANIFEST_DIR) would rerun, and everything above them would be rebuilt.
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("CARGO_PKG_")
            || name_str.starts_with("CARGO_BIN_")
            || matches!(
                &*name_str,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            command.env_remove(&name);
        }
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()?.file_name());
    if let Some(profile) = profile.and_then(|p| p.to_str())
        && profile != "debug"
    {
        command.args(["--profile", profile]);
    }
    let output = command.output().expect("run cargo");
    assert!(
        output.status.success(),
        "cargo build {selection:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut examples = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_example = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
        if let (true, Some(name), Some(path)) = (
            is_example,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            examples.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    examples
}

/// Read `pipe` on a thread into a string (chunks, not lines: a prompt has no newline).
pub(crate) fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

/// Whether this runs under CI (`CI` set, and not to `false` or `0`): a test whose real
/// component is missing then fails instead of saying "skipped".
#[allow(dead_code)]
pub(crate) fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0")
}

impl TempDir {
    pub(crate) fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wskit-examples-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
