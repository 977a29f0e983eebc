//! The settings' precedence as a user meets it: flag > environment > `--config` file >
//! default, seen in where media-server says it keeps its storage.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Start media-server with `args` and `env`; the storage root it reports.
fn storage_used(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_media-server"))
        .env("RUST_LOG", "info")
        .env_remove("VIDEOPICK_STORAGE")
        .envs(env.iter().copied())
        .args([
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--min-free-bytes",
            "0",
        ])
        .args(["--transcode-workers", "0", "--log-format", "json"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut found = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "media role listening"
        {
            found = v["storage"].as_str().map(str::to_string);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found.expect("media-server reported its storage")
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let (file_dir, env_dir, flag_dir) = (
        dir.path().join("from-file"),
        dir.path().join("from-env"),
        dir.path().join("from-flag"),
    );
    let config = dir.path().join("videopick.toml");
    std::fs::write(
        &config,
        format!("[media]\nstorage = \"{}\"\n", file_dir.display()),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [("VIDEOPICK_STORAGE", env_dir.to_str().unwrap())];
    assert_eq!(
        storage_used(&["--config", cfg], &[]),
        file_dir.to_str().unwrap()
    );
    assert_eq!(
        storage_used(&["--config", cfg], &env),
        env_dir.to_str().unwrap()
    );
    assert_eq!(
        storage_used(
            &["--config", cfg, "--storage", flag_dir.to_str().unwrap()],
            &env
        ),
        flag_dir.to_str().unwrap()
    );
    // The config file itself can come from the environment too.
    assert_eq!(
        storage_used(&[], &[("VIDEOPICK_CONFIG", cfg)]),
        file_dir.to_str().unwrap()
    );
    // A mistake in the file names the key.
    std::fs::write(&config, "[media]\nstorage_dir = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_media-server"))
        .args(["--config", cfg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage_dir"), "{err}");
}
