//! The transcode issue's benchmark: on one generated 1080p input, the one-process ladder
//! (decode once, split + scale per rung) against one ffmpeg per rung (each decoding the
//! input itself), sequential and concurrent; and the `Runner` against running the same
//! ffmpeg command directly. Wall time and CPU (children's user + system time from
//! `/proc/self/stat`).
//!
//! ```sh
//! cargo run --release -p videopick-benches --bin ladder-bench -- --seconds 30
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use videopick_transcode::command;
use videopick_transcode::plan::{LadderConfig, Plan, plan_ladder};
use videopick_transcode::probe::probe;
use videopick_transcode::runner::{RunOptions, Runner, RunnerConfig};

#[derive(Parser)]
struct Args {
    /// Input duration in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Work directory (default: a new one under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds of the runner-overhead comparison (each runs both, in alternating order).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Only the runner-overhead comparison.
    #[arg(long)]
    overhead_only: bool,
}

/// This process's own user + system CPU seconds so far.
fn self_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Reaped children's user + system CPU seconds so far.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, so cutime (16) and cstime (17) are at 13, 14.
    let ticks: f64 = f.get(13).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(14).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn ffmpeg(args: &[OsString]) {
    let st = Command::new("ffmpeg").args(args).status().expect("ffmpeg");
    assert!(st.success(), "ffmpeg failed");
}

fn measure(label: &str, f: impl FnOnce()) -> (Duration, f64) {
    let (t, c) = (Instant::now(), children_cpu());
    f();
    let (wall, cpu) = (t.elapsed(), children_cpu() - c);
    println!(
        "{label:<44} wall {:>7.2} s   cpu {:>7.2} s",
        wall.as_secs_f64(),
        cpu
    );
    (wall, cpu)
}

/// One rung alone: its own decode, the same filters and encoder settings.
fn single_rung(input: &Path, out: &Path, plan: &Plan, i: usize) -> Vec<OsString> {
    let one = Plan {
        rungs: vec![plan.rungs[i].clone()],
        ..plan.clone()
    };
    command::ladder(input, out, &one)
}

#[allow(clippy::too_many_lines)] // a linear script of measurements
fn main() {
    let a = Args::parse();
    let dir = a
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join("videopick-ladder-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.mp4");
    println!(
        "generating {} s of 1920x1080 30 fps H.264 + AAC …",
        a.seconds
    );
    let generate: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1920x1080:rate=30:duration={}", a.seconds),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={}", a.seconds),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        "6M",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    ]
    .iter()
    .map(OsString::from)
    .chain([input.clone().into()])
    .collect();
    ffmpeg(&generate);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let info = rt.block_on(probe(&input)).unwrap();
    let plan = plan_ladder(&info, &LadderConfig::default()).unwrap();
    let names: Vec<&str> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
    println!(
        "ladder {names:?}, preset {}, machine: {} cores",
        plan.preset,
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    if !a.overhead_only {
        let one = dir.join("one");
        let (w1, c1) = measure("one process, decode once, split + scale", || {
            ffmpeg(&command::ladder(&input, &one, &plan));
        });
        let (ws, cs) = measure("one ffmpeg per rung, one after another", || {
            for i in 0..plan.rungs.len() {
                ffmpeg(&single_rung(&input, &dir.join(format!("seq{i}")), &plan, i));
            }
        });
        let (wp, cp) = measure("one ffmpeg per rung, all at once", || {
            let kids: Vec<_> = (0..plan.rungs.len())
                .map(|i| {
                    Command::new("ffmpeg")
                        .args(single_rung(&input, &dir.join(format!("par{i}")), &plan, i))
                        .spawn()
                        .unwrap()
                })
                .collect();
            for mut k in kids {
                assert!(k.wait().unwrap().success());
            }
        });
        println!(
            "one process vs per-rung sequential: {:.2}x faster ({:.2}x less CPU); vs per-rung concurrent: {:.2}x faster ({:.2}x less CPU)",
            ws.as_secs_f64() / w1.as_secs_f64(),
            cs / c1,
            wp.as_secs_f64() / w1.as_secs_f64(),
            cp / c1
        );
    }

    // Runner overhead: the same command, direct and through Runner::run (progress parsed).
    let runner = Runner::new(RunnerConfig {
        nice: None,
        ..RunnerConfig::default()
    });
    let (mut direct, mut ran, mut ffmpeg_cpu, mut own_cpu) =
        (Duration::ZERO, Duration::ZERO, 0.0, 0.0);
    for round in 0..a.rounds {
        let mut run_direct = || {
            let args = command::ladder(&input, &dir.join(format!("d{round}")), &plan);
            let mut with_progress = vec![
                OsString::from("-progress"),
                "pipe:1".into(),
                "-nostats".into(),
            ];
            with_progress.extend(args);
            direct += measure("direct (std::process, -progress to a pipe)", || {
                let out = Command::new("ffmpeg")
                    .args(&with_progress)
                    .output()
                    .unwrap();
                assert!(out.status.success());
            })
            .0;
        };
        let mut run_runner = || {
            let args = command::ladder(&input, &dir.join(format!("r{round}")), &plan);
            let mut reports = 0u32;
            let before = self_cpu();
            let (wall, cpu) = measure("Runner::run (progress parsed, group, limit)", || {
                rt.block_on(runner.run(
                    args,
                    &RunOptions {
                        duration: info.duration,
                        timeout: None,
                    },
                    std::future::pending(),
                    |_| reports += 1,
                ))
                .unwrap();
            });
            own_cpu += self_cpu() - before;
            ffmpeg_cpu += cpu;
            ran += wall;
            assert!(reports > 0);
        };
        if round % 2 == 0 {
            run_direct();
            run_runner();
        } else {
            run_runner();
            run_direct();
        }
    }
    println!(
        "runner: {:+.2} % wall time against direct over {} rounds; the runner's own CPU {:.3} s = {:.3} % of ffmpeg's {:.1} s",
        (ran.as_secs_f64() / direct.as_secs_f64() - 1.0) * 100.0,
        a.rounds,
        own_cpu,
        own_cpu / ffmpeg_cpu * 100.0,
        ffmpeg_cpu
    );
    let _ = std::fs::remove_dir_all(&dir);
}
