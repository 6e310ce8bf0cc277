//! The HTTP listener under abuse, over raw sockets: connection limits in all and per client,
//! header-read and idle timeouts, and problem documents for the refusals made before a request
//! reaches the API (a garbage request line, a target or head too large).
//!
//! Every client here is on 127.0.0.0/8; a second client is told apart by binding 127.0.0.2. The
//! time bounds are generous ceilings on what must happen within a second or so, not measurements.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use quire::Application;
use quire::config::{Secret, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long anything that should happen at once (or after a 1 s timeout) may take.
const PROMPTLY: Duration = Duration::from_secs(10);

struct Node {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A node on 127.0.0.1:0 with its own SQLite files; `configure` sets the limits under test.
async fn spawn_node(configure: impl FnOnce(&mut Settings)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Settings::default()
    };
    settings.api.rate_limit_per_second = 0.0;
    settings.api.token_secret = Some(Secret::new("a test secret that is long enough!"));
    settings.summaries.auto = false;
    configure(&mut settings);
    settings.validate().expect("test settings");
    let app = Application::build(settings)
        .await
        .expect("starting the node");
    let addr = app.local_addr().expect("the node serves HTTP");
    tokio::spawn(app.run_until(std::future::pending()));
    Node { addr, _dir: dir }
}

/// A connection to `addr` from `from` (any loopback address).
async fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.expect("connect")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Reads until the server closes: `Some(bytes)` on EOF or a reset, `None` if it is still open
/// after [`PROMPTLY`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PROMPTLY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn parse(bytes: &[u8]) -> Self {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", bytes.escape_ascii()));
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head}"));
        Self {
            status,
            head,
            body: bytes[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The RFC 9457 problem this reply carries, checked for its shape.
    fn problem(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.head
        );
        let problem: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(&self.body)));
        assert_eq!(problem["status"], self.status, "{problem}");
        for field in ["type", "title", "detail", "code"] {
            assert!(problem[field].is_string(), "{field} in {problem}");
        }
        let code = problem["code"].as_str().unwrap();
        assert_eq!(
            problem["type"],
            format!("/problems/{}", code.replace('_', "-"))
        );
        problem
    }
}

/// Sends `request` on a new connection and reads the reply until the server closes.
async fn exchange_from(from: IpAddr, addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = connect_from(from, addr).await;
    stream.write_all(request).await.expect("send the request");
    let bytes = read_until_closed(&mut stream)
        .await
        .expect("the server answers and closes");
    Reply::parse(&bytes)
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    exchange_from(loopback(1), addr, request).await
}

const STATUS: &[u8] = b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// What a connection refused at accept sees: at most a 503 problem, then the close.
fn assert_refused(received: Option<Vec<u8>>, which: &str) {
    let received = received.unwrap_or_else(|| panic!("{which} is still open"));
    if !received.is_empty() {
        let reply = Reply::parse(&received);
        assert_eq!(reply.status, 503, "{which}: {}", reply.head);
        assert_eq!(reply.problem()["code"], "too_many_connections");
    }
}

// ---------------------------------------------------------------------------------------------
// Connection limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_clients_share_are_closed_and_other_clients_are_served() {
    let node = spawn_node(|s| {
        s.http.max_connections_per_ip = 50;
        // The idle connections are not timed out while the test looks at them.
        s.http.header_read_timeout_secs = 120;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect(node.addr).await);
    }
    let mut over = idle.split_off(50);
    for (i, stream) in over.iter_mut().enumerate() {
        assert_refused(
            read_until_closed(stream).await,
            &format!("connection {}", 50 + i),
        );
    }

    // Another client is served while 127.0.0.1 holds its whole share.
    let reply = exchange_from(loopback(2), node.addr, STATUS).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    // So is an admitted connection of the client at its limit.
    idle[0].write_all(STATUS).await.unwrap();
    let reply = Reply::parse(&read_until_closed(&mut idle[0]).await.expect("answered"));
    assert_eq!(reply.status, 200, "{}", reply.head);

    // Once its idle connections are gone, the client gets its share back.
    drop(idle);
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let mut stream = connect(node.addr).await;
        stream.write_all(STATUS).await.unwrap();
        let received = read_until_closed(&mut stream).await.unwrap_or_default();
        if received.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "127.0.0.1 is still refused after closing its connections: {:?}",
            received.escape_ascii().to_string()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_global_limit_are_closed() {
    let node = spawn_node(|s| {
        s.http.max_connections = 20;
        s.http.max_connections_per_ip = 15;
        s.http.header_read_timeout_secs = 120;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..15 {
        held.push(connect_from(loopback(1), node.addr).await);
    }
    for _ in 0..5 {
        held.push(connect_from(loopback(2), node.addr).await);
    }
    // 127.0.0.2 is within its share, but the server is full.
    let mut over = connect_from(loopback(2), node.addr).await;
    assert_refused(read_until_closed(&mut over).await, "the 21st connection");
    let mut over = connect_from(loopback(3), node.addr).await;
    assert_refused(read_until_closed(&mut over).await, "the 22nd connection");
    // The admitted ones are served.
    let last = held.last_mut().unwrap();
    last.write_all(STATUS).await.unwrap();
    let reply = Reply::parse(&read_until_closed(last).await.expect("answered"));
    assert_eq!(reply.status, 200, "{}", reply.head);
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_stalls_is_closed_after_the_header_timeout() {
    let node = spawn_node(|s| s.http.header_read_timeout_secs = 1).await;
    let mut partial = connect(node.addr).await;
    partial
        .write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut partial).await;
    assert_eq!(
        received.as_deref(),
        Some(&[][..]),
        "a stalled head is closed without an answer"
    );
    // A connection that sends nothing at all, too.
    let mut silent = connect(node.addr).await;
    assert_eq!(
        read_until_closed(&mut silent).await.as_deref(),
        Some(&[][..])
    );
    // One that stalls inside the HTTP/2 preface, too.
    let mut preface = connect(node.addr).await;
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(read_until_closed(&mut preface).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let node = spawn_node(|s| {
        s.http.idle_timeout_secs = 1;
        s.http.header_read_timeout_secs = 120;
    })
    .await;
    let mut stream = connect(node.addr).await;
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The response, kept alive: read its head and its content-length's worth of body.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = tokio::time::timeout(PROMPTLY, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response was complete");
            received.extend_from_slice(&buf[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let reply = Reply::parse(&received);
                let length: usize = reply.header("content-length").unwrap().parse().unwrap();
                if received.len() >= end + 4 + length {
                    return reply;
                }
            }
        }
    })
    .await
    .expect("the response");
    assert_eq!(complete.status, 200, "{}", complete.head);
    assert_eq!(
        read_until_closed(&mut stream).await.as_deref(),
        Some(&[][..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_closed_after_the_idle_timeout() {
    let node = spawn_node(|s| {
        s.http.idle_timeout_secs = 1;
        s.http.header_read_timeout_secs = 120;
    })
    .await;
    let mut stream = connect(node.addr).await;
    stream
        .write_all(
            b"POST /auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut stream).await.is_some(),
        "a body that stalls keeps its connection"
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals before the API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_or_headers_over_the_limits_are_refused_with_problems() {
    let node = spawn_node(|_| {}).await;
    let long = format!(
        "GET /books?q={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    let reply = exchange(node.addr, long.as_bytes()).await;
    assert_eq!(reply.status, 414, "{}", reply.head);
    assert_eq!(reply.problem()["code"], "uri_too_long");

    let large = format!(
        "GET /status HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20_000)
    );
    let reply = exchange(node.addr, large.as_bytes()).await;
    assert_eq!(reply.status, 431, "{}", reply.head);
    assert_eq!(reply.problem()["code"], "headers_too_large");

    // Within the limits, the same request is served.
    let reply = exchange(node.addr, STATUS).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_unparseable_heads_are_problems() {
    let node = spawn_node(|_| {}).await;
    for garbage in [
        b"this is not http\r\n\r\n".as_slice(),
        b"GET /status HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        // A TLS ClientHello's first bytes, sent to the plain-HTTP port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let reply = exchange(node.addr, garbage).await;
        assert_eq!(reply.status, 400, "{}", reply.head);
        assert_eq!(reply.problem()["code"], "malformed_request");
        assert_eq!(reply.header("connection"), Some("close"));
    }

    // More header fields than hyper parses.
    let mut many = String::from("GET /status HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let reply = exchange(node.addr, many.as_bytes()).await;
    assert_eq!(reply.status, 431, "{}", reply.head);
    assert_eq!(reply.problem()["code"], "headers_too_large");

    // A head larger than hyper buffers.
    let huge = format!(
        "GET /status HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
        "c".repeat(200_000)
    );
    let reply = exchange(node.addr, huge.as_bytes()).await;
    assert_eq!(reply.status, 431, "{}", reply.head);
    assert_eq!(reply.problem()["code"], "headers_too_large");
}

// ---------------------------------------------------------------------------------------------
// Open-file limit

/// `quire serve` raises its soft limit on open files to the hard limit: started with a soft
/// limit of 256, it runs with its hard limit. (Read from /proc, so Linux only.)
#[cfg(target_os = "linux")]
#[test]
fn serve_raises_the_open_file_limit_to_the_hard_limit() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -Sn 256 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_quire"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["serve", "--listen", "127.0.0.1:0"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("QUIRE_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .env("QUIRE_SUMMARIES__AUTO", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start quire serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id()));
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("quire serve printed where it listens");
    assert!(ready.starts_with("quire listening on"), "{ready}");
    let limits = limits.unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("{limits}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(soft, "256", "{line}");
    assert_eq!(soft, hard, "{line}");
}
