//! `e2e-kv`: a tiny line-protocol server used as a pod process in e2e tests.
//!
//! `e2e-kv --listen IP:PORT --data-dir DIR` answers, one command per line:
//! `get` (stored value), `set VALUE`, `hostname`, `resolve NAME` (comma-separated IPs),
//! `env NAME`, `cat PATH`, `peer` (the client's IP), `relay ADDR CMD` (ask another
//! server); and `GET /…` as HTTP 200 (for httpGet probes).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// Directory holding the stored value.
    #[arg(long)]
    data_dir: PathBuf,
}

/// Sends `cmd` to another e2e-kv at `addr` and returns its reply.
fn relay(addr: &str, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

fn answer(line: &str, data_dir: &Path, peer: &str) -> String {
    let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "get" => std::fs::read_to_string(data_dir.join("value")).unwrap_or_default(),
        "set" => match std::fs::write(data_dir.join("value"), arg) {
            Ok(()) => {
                eprintln!("set {arg}");
                "ok".into()
            }
            Err(e) => format!("error: {e}"),
        },
        "hostname" => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
        "resolve" => match (arg, 0).to_socket_addrs() {
            Ok(addrs) => {
                let mut ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                ips.sort();
                ips.dedup();
                ips.join(",")
            }
            Err(e) => format!("error: {e}"),
        },
        "env" => std::env::var(arg).unwrap_or_default(),
        "cat" => std::fs::read_to_string(arg).unwrap_or_else(|e| format!("error: {e}")),
        "peer" => peer.to_string(),
        "relay" => {
            let (addr, cmd) = arg.split_once(' ').unwrap_or((arg, ""));
            relay(addr, cmd).unwrap_or_else(|e| format!("error: {e}"))
        }
        other => format!("error: unknown command {other:?}"),
    }
}

fn serve(stream: TcpStream, data_dir: &Path) -> Result<()> {
    let peer = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        let trimmed = line.trim_end().to_string();
        line.clear();
        if trimmed.starts_with("GET /") {
            writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")?;
            return Ok(());
        }
        let reply = answer(&trimmed, data_dir, &peer);
        writer.write_all(format!("{reply}\n").as_bytes())?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    eprintln!("e2e-kv listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        let dir = args.data_dir.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &dir) {
                eprintln!("connection error: {e}");
            }
        });
    }
    Ok(())
}
