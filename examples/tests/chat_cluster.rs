//! Several `chat-server` processes on one Redis (a private `redis-server` on its own
//! port, so it can be restarted), driven by the unmodified `socket.io-client`: a message
//! sent on one node reaches the clients of the other exactly once and in the same order;
//! presence sums across nodes; moderation crosses nodes; a node that just started serves
//! the room's history from Redis; Redis restarted mid-test → each node keeps serving its
//! own members meanwhile and delivery across nodes resumes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChatServer, chat_token, start_chat_server};
use serde_json::{Value, json};

const SECRET: &str = "cluster-secret";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis(port: u16) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

fn chat_server(redis_port: u16, node: &str) -> (ChatServer, String) {
    let redis = format!("redis://127.0.0.1:{redis_port}");
    let server = start_chat_server(&[
        "--jwt-secret",
        SECRET,
        "--redis",
        &redis,
        "--node-id",
        node,
        "--rate",
        "1000",
    ]);
    let addr = server.addr.clone();
    (server, addr)
}

fn metrics(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

fn texts(v: &Value) -> Vec<(u64, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_u64().unwrap(), m[1].as_str().unwrap().to_string()))
        .collect()
}

/// Run `chat-cluster.mjs` against the three nodes, killing and restarting Redis when it
/// asks; what it saw (without the full per-client logs, which failures print).
fn run_scenario(port: u16, redis_proc: &mut Option<Proc>, nodes: [&str; 3]) -> Value {
    let token = |sub: &str, role: &str| chat_token(sub, role, SECRET);
    let tokens = json!({
        "alice": token("alice", "viewer"),
        "carol": token("carol", "viewer"),
        "dave": token("dave", "viewer"),
        "erin": token("erin", "viewer"),
        "mod": token("mod", "moderator"),
    });
    let mut node = Command::new("node")
        .arg(clients_dir().join("chat-cluster.mjs"))
        .args(nodes.map(|a| format!("http://{a}/")))
        .arg(tokens.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut result = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        match line.as_str() {
            "RESTART" => {
                drop(redis_proc.take()); // killed: no persistence, its data is gone
                writeln!(stdin).unwrap();
            }
            "UP" => {
                let m = metrics(nodes[0]);
                assert_eq!(metric(&m, "videopick_chat_bus_up"), 0, "{m}");
                assert!(metric(&m, "videopick_chat_bus_fallbacks_total") >= 1, "{m}");
                *redis_proc = Some(redis(port));
                writeln!(stdin).unwrap();
            }
            _ => {
                result = Some(line);
                break;
            }
        }
    }
    let status = node.wait().unwrap();
    let mut out: Value = serde_json::from_str(result.as_deref().unwrap_or("{}")).unwrap();
    let received = out
        .as_object_mut()
        .and_then(|o| o.remove("received"))
        .unwrap_or_default();
    assert!(
        status.success() && out.get("error").is_none(),
        "{out:#}\nreceived: {received}"
    );
    out
}

#[test]
fn two_nodes_on_one_redis_deliver_once_sum_presence_and_survive_a_redis_restart() {
    assert!(
        clients_dir().join("node_modules/socket.io-client").exists(),
        "run `npm ci` in clients/js (scripts/test.sh does)"
    );
    let port = free_port();
    let mut redis_proc = Some(redis(port));
    let (_a, addr_a) = chat_server(port, "node-a");
    let (_b, addr_b) = chat_server(port, "node-b");
    let (_c, addr_c) = chat_server(port, "node-c");
    let out = run_scenario(port, &mut redis_proc, [&addr_a, &addr_b, &addr_c]);

    // Join acks count members across nodes (alice, mod on A; carol, dave on B).
    assert_eq!(out["joins"], json!([1, 2, 3, 4]), "{out}");
    assert!(out["acks"].as_array().unwrap().iter().all(|a| a == true));
    // Every client, on either node, got the 40 messages once, in one order.
    let first = texts(&out["firstRound"]["alice"]);
    let first40: Vec<_> = first.iter().take(40).cloned().collect();
    assert_eq!(first40.len(), 40, "{out}");
    let ids: Vec<u64> = first40.iter().map(|m| m.0).collect();
    assert_eq!(
        ids,
        (1..=40).collect::<Vec<_>>(),
        "ids rise by one per room"
    );
    for who in ["mod", "carol", "dave"] {
        let got: Vec<_> = texts(&out["firstRound"][who])
            .into_iter()
            .take(40)
            .collect();
        assert_eq!(got, first40, "{who} saw another order or a duplicate");
    }
    for who in ["alice", "mod", "carol", "dave"] {
        assert_eq!(
            out["firstRound"][who].as_array().unwrap().len(),
            40,
            "{who}: a duplicate or an extra message"
        );
    }
    // Each sender's messages in the order sent.
    for p in ["a", "c"] {
        let mine: Vec<&str> = first40
            .iter()
            .map(|m| m.1.as_str())
            .filter(|t| t.starts_with(p))
            .collect();
        let want: Vec<String> = (0..20).map(|i| format!("{p}{i}")).collect();
        assert_eq!(mine, want);
    }
    // Moderation on node A reached node B.
    assert_eq!(out["delete"], json!({"ok": true}));
    assert_eq!(out["ban"], json!({"ok": true}));
    assert_eq!(out["daveRejoin"], "banned", "{out}");
    assert_eq!(
        out["deletedSeenBy"],
        json!(["alice", "carol", "dave", "mod"])
    );
    // Node C served the history from Redis: the 40 messages less the deleted one.
    let history: Vec<&str> = out["historyOnC"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 39, "{history:?}");
    assert_eq!(
        history.last().copied(),
        first40.last().map(|m| m.1.as_str())
    );
    // alice, mod, carol and erin (dave was banned).
    assert_eq!(out["countOnC"], 4, "{out}");
    // While Redis was down node A still served its members.
    assert_eq!(out["duringRedisOutage"]["ok"], true, "{out}");
    // After the restart: delivery resumed across nodes, exactly once, in one order, and
    // ids kept rising although Redis had lost the sequence.
    assert!(
        out["resumeAcks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a == true)
    );
    let resumed = texts(&out["resumed"]["alice"]);
    assert_eq!(resumed.len(), 10, "{out}");
    let last_before = out["lastIdBefore"].as_u64().unwrap();
    assert!(resumed.iter().all(|m| m.0 > last_before), "{resumed:?}");
    for who in ["mod", "carol"] {
        assert_eq!(texts(&out["resumed"][who]), resumed, "{who}");
    }
    let m = metrics(&addr_a);
    assert_eq!(metric(&m, "videopick_chat_bus_up"), 1, "{m}");
    assert!(
        metric(&m, "videopick_chat_bus_reconnects_total") >= 1,
        "{m}"
    );
    assert!(
        metric(&m, "videopick_chat_bus_echoes_dropped_total") >= 1,
        "{m}"
    );
    drop(redis_proc);
}
