//! End-to-end tests of the `processor` daemon as an operator runs it: separate processes with
//! RocksDB data dirs, talking to a real `nats-server` (JetStream), to a mock chain served over
//! Bitcoin Core's JSON-RPC, to a real `litecoind` and a real `monerod` in regtest.
//!
//! This library is the harness: starting and killing processes, reading their metrics. The
//! nodes are Debian packages that `scripts/setup.sh` installs; a test whose node is missing is
//! skipped with a message, unless `REQUIRE_NODES=1` (the test command sets it), then it fails.

pub mod cluster;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `binary` is installed: on the `PATH`, or in the sbin directories Debian puts daemons
/// in (`nats-server` is in /usr/sbin, which a normal user's `PATH` lacks).
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// Whether `binary` can be run; if not, either skip (message) or fail under `REQUIRE_NODES=1`.
pub fn require(binary: &str) -> bool {
    let found = find_binary(binary).is_some();
    if !found {
        assert!(
            std::env::var_os("REQUIRE_NODES").is_none(),
            "{binary} is not installed (scripts/setup.sh installs it)"
        );
        eprintln!("SKIPPED: {binary} is not installed (scripts/setup.sh installs it)");
    }
    found
}

/// A local port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free local port")
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One HTTP GET on localhost: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    // A reset after the whole reply arrived still leaves the reply.
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8(reply).ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// A metric's value from Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| line.split(['{', ' ']).next() == Some(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A child process that is killed when dropped.
pub struct Process {
    child: Option<Child>,
    command: Vec<String>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn start(command: Vec<String>, log: &Path) -> Process {
        let mut process = Process { child: None, command, log: log.to_path_buf() };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("the log file opens");
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file clones"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.command[0]));
        self.child = Some(child);
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully in time.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        // The shell's builtin `kill`: no procps needed.
        let _ = Command::new("sh").arg("-c").arg(format!("kill -TERM {}", child.id())).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Resident memory (Linux), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `nats-server` with JetStream, its store in `dir`.
pub struct Nats {
    pub process: Process,
    pub port: u16,
}

impl Nats {
    pub fn start(dir: &Path) -> Nats {
        let port = free_port();
        let store = dir.join("jetstream");
        let binary = find_binary("nats-server").expect("nats-server is installed");
        // The processor's largest messages exceed NATS's default 1 MiB payload (the daemon
        // refuses a broker that cannot carry them): as a deployment would, raise it.
        let config = dir.join("nats.conf");
        std::fs::write(&config, "max_payload: 8MB\n").expect("nats-server's configuration is written");
        let command = vec![
            binary.display().to_string(),
            "-c".into(),
            config.display().to_string(),
            "-js".into(),
            "-sd".into(),
            store.display().to_string(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        let process = Process::start(command, &dir.join("nats.log"));
        assert!(wait_for_port(port, Duration::from_secs(10)), "nats-server did not start:\n{}", process.log_tail(20));
        Nats { process, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and store.
    pub fn crash_and_restart(&mut self) {
        self.process.restart();
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "nats-server did not restart:\n{}",
            self.process.log_tail(20)
        );
    }
}

/// A `litecoind` in regtest (Litecoin Core 0.21, the Bitcoin Core-family node installable
/// here), with a wallet to fund deposits and receive payments.
pub struct Litecoind {
    pub process: Process,
    pub rpc_port: u16,
    pub rpc: processor::rpc::bitcoin::BitcoinRpc,
}

impl Litecoind {
    pub const USER: &'static str = "e2e";
    pub const PASSWORD: &'static str = "e2e-password";

    pub async fn start(dir: &Path) -> Litecoind {
        let data = dir.join("litecoind");
        std::fs::create_dir_all(&data).expect("the data dir is created");
        let rpc_port = free_port();
        let binary = find_binary("litecoind").expect("litecoind is installed");
        let command = vec![
            binary.display().to_string(),
            "-regtest".into(),
            format!("-datadir={}", data.display()),
            format!("-rpcport={rpc_port}"),
            format!("-port={}", free_port()),
            format!("-rpcuser={}", Self::USER),
            format!("-rpcpassword={}", Self::PASSWORD),
            "-listen=0".into(),
            "-server".into(),
            "-fallbackfee=0.0001".into(),
            "-printtoconsole".into(),
        ];
        let process = Process::start(command, &dir.join("litecoind.log"));
        let rpc = processor::rpc::bitcoin::BitcoinRpc::new(
            format!("127.0.0.1:{rpc_port}"),
            Some((Self::USER, Self::PASSWORD)),
            Duration::from_secs(30),
        );
        let started = Instant::now();
        while rpc.block_count().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "litecoind did not start:\n{}", process.log_tail(20));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Litecoind { process, rpc_port, rpc }
    }

    /// One RPC call, panicking with the node's answer if it fails.
    pub async fn call(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        match self.rpc.call(method, params.clone()).await {
            Ok(result) => result,
            Err(error) => panic!("litecoind {method} {params}: {error}"),
        }
    }
}

/// A `monerod` in regtest, offline, at fixed difficulty 1 (a block costs ~0.1 s of RandomX).
pub struct Monerod {
    pub process: Process,
    pub rpc_port: u16,
}

impl Monerod {
    pub async fn start(dir: &Path) -> Monerod {
        let data = dir.join("monerod");
        let rpc_port = free_port();
        let binary = find_binary("monerod").expect("monerod is installed");
        let command = vec![
            binary.display().to_string(),
            "--regtest".into(),
            "--offline".into(),
            "--fixed-difficulty=1".into(),
            "--non-interactive".into(),
            "--no-igd".into(),
            "--rpc-bind-ip".into(),
            "127.0.0.1".into(),
            "--rpc-bind-port".into(),
            rpc_port.to_string(),
            "--p2p-bind-port".into(),
            free_port().to_string(),
            "--zmq-rpc-bind-port".into(),
            free_port().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--log-level".into(),
            "0".into(),
        ];
        let process = Process::start(command, &dir.join("monerod.log"));
        assert!(wait_for_port(rpc_port, Duration::from_secs(60)), "monerod did not start:\n{}", process.log_tail(30));
        Monerod { process, rpc_port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }
}
