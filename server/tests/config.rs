//! The config file: the commented example in the repo is exactly the defaults, every key
//! is a field, and mistakes are reported with the key's name.

use videopick_server::FileConfig;
use videopick_server::config::{AppConfig, ChatConfig, JobsConfig, MediaConfig};
use videopick_server::jobs::RecordingJobs;

#[test]
fn the_example_file_is_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/videopick.toml");
    let c = FileConfig::load(std::path::Path::new(path)).unwrap();
    assert_eq!(c.media, MediaConfig::default());
    assert_eq!(c.jobs, JobsConfig::default());
    assert_eq!(c.chat, ChatConfig::default());
    assert_eq!(c.app, AppConfig::default());
}

#[test]
fn keys_set_fields_and_unknown_keys_are_refused() {
    let c = FileConfig::parse(
        r#"
        [media]
        rtmp = "0.0.0.0:1935"
        record_apps = ["live", "events"]
        api_token = "t"
        [jobs]
        transcode_recordings = "ladder"
        ladder = [720, 360]
        [chat]
        redis = "redis://127.0.0.1:6379"
        "#,
    )
    .unwrap();
    assert_eq!(c.media.rtmp.to_string(), "0.0.0.0:1935");
    assert_eq!(c.media.record_apps, ["live", "events"]);
    assert_eq!(c.media.jobs.transcode_recordings, RecordingJobs::Ladder);
    assert_eq!(c.media.jobs.ladder, [720, 360]);
    assert_eq!(c.chat.redis.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(c.media.http, MediaConfig::default().http);

    let err = FileConfig::parse("[media]\nrtmp_port = 1935\n").unwrap_err();
    assert!(err.contains("rtmp_port"), "{err}");
    let err = FileConfig::parse("[jobs]\ntranscode_recordings = \"x\"\n").unwrap_err();
    assert!(err.contains("transcode_recordings"), "{err}");
    let err = FileConfig::parse("[medias]\n").unwrap_err();
    assert!(
        err.contains("unknown field") && err.contains("medias"),
        "{err}"
    );
}

/// Every key offered as a flag is a field of its table, and every field is offered: a flag
/// can never set something the file cannot, or the other way round.
#[test]
fn the_keys_tables_match_the_config_structs() {
    use videopick_server::config::{CHAT_KEYS, JOBS_KEYS, Kind, MEDIA_KEYS};
    let defaults = FileConfig::defaults();
    for (table, keys) in [
        ("media", MEDIA_KEYS),
        ("jobs", JOBS_KEYS),
        ("chat", CHAT_KEYS),
    ] {
        for key in keys {
            let value = match key.kind {
                Kind::Switch => "true".to_string(),
                Kind::Number => match key.name {
                    "http_read_kib" => "64".into(),
                    _ => "7".into(),
                },
                Kind::Text => match key.name {
                    "rtmp" | "http" | "listen" => "\"127.0.0.1:9\"".into(),
                    "transcode_recordings" => "\"ladder\"".into(),
                    _ => "\"x\"".into(),
                },
                Kind::TextList => "[\"a\", \"b\"]".into(),
                Kind::NumberList => "[1, 2]".into(),
            };
            let text = format!("[{table}]\n{} = {value}\n", key.name);
            assert!(
                FileConfig::parse(&text).is_ok(),
                "{text}: {:?}",
                FileConfig::parse(&text)
            );
        }
        let fields = defaults[table].as_table().unwrap();
        for field in fields.keys() {
            assert!(
                keys.iter().any(|k| k.name == field),
                "[{table}] {field} has no flag"
            );
        }
    }
}
