//! Real `ffmpeg` and `ffprobe` runs (the test command installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Run `cmd`; panics with its stderr unless it succeeds; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is ffmpeg installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ffmpeg -hide_banner -loglevel error -y <args>` in the background (stderr piped, to
/// read on failure).
pub fn spawn(args: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed (scripts/test.sh installs it)")
}

/// The lavfi test inputs (`testsrc2` video at `size` and 25 fps, a 440 Hz sine at 44.1 kHz)
/// as `ffmpeg` arguments, for `secs` seconds.
pub fn lavfi_args(size: &str, secs: u32) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate=25:duration={secs}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate=44100:duration={secs}"),
    ]
}

/// A command that publishes `secs` seconds of the lavfi test inputs in real time as
/// H.264 (2 s GOP at 25 fps) + AAC to `url` (e.g. `rtmp://127.0.0.1:1935/live/cam`).
pub fn publish_command(url: &str, size: &str, secs: u32) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(lavfi_args(size, secs))
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "50", "-c:a", "aac", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// `ffmpeg -f lavfi` → `dir/name`, an H.264 (30 fps) + AAC (48 kHz stereo) file of `secs`
/// seconds at `size` (the container from the name's extension).
pub fn make_input(dir: &Path, name: &str, size: &str, secs: u32) -> PathBuf {
    let out = dir.join(name);
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={size}:rate=30:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={secs}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest"])
        .arg(&out));
    out
}

/// `ffmpeg -v warning -i <input> -f null -`: its stderr (empty means a clean decode).
/// Panics if ffmpeg cannot read the input at all.
pub fn decode_warnings(input: &str) -> String {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "warning",
            "-i",
            input,
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ffprobe -v error <extra> <input>`: its stdout.
pub fn ffprobe(input: &str, extra: &[&str]) -> String {
    run(Command::new("ffprobe")
        .args(["-v", "error"])
        .args(extra)
        .arg(input))
}
