//! Network faults for AWS endpoints, as real sockets: a listener that accepts connections and
//! never answers (a black-holed endpoint, a wedged proxy), a port that refuses connections,
//! and [`FaultProxy`], which forwards to a real endpoint (moto) until told to hang or refuse,
//! for faults that begin while a function is running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::watch;

/// Accepts every connection and keeps it open without reading or writing, until the test
/// process ends.
#[derive(Debug)]
pub struct HangingListener {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl HangingListener {
    pub fn start() -> HangingListener {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the hanging listener");
        let addr = listener.local_addr().expect("local address");
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(stream);
            }
        });
        HangingListener { addr, held }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far (proof that a client reached it).
    pub fn connections(&self) -> usize {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// `http://127.0.0.1:<port>` where nothing listens: a port bound and released at once.
pub fn refused_endpoint() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}")
}

/// What a [`FaultProxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    None,
    /// Keep every connection (open ones and new ones) open, and pass nothing more.
    Hang,
    /// Close open connections and the listener: new connections are refused.
    Refuse,
}

/// A TCP proxy in front of an HTTP endpoint whose behaviour can be switched while a client
/// uses it. Runs on the test's tokio runtime.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
}

impl FaultProxy {
    /// Forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the proxy");
        let addr = listener.local_addr().expect("local address");
        let (fault, mut changes) = watch::channel(Fault::None);
        let connections = changes.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        tokio::spawn(relay(client, upstream.clone(), connections.clone()));
                    }
                    changed = changes.changed() => {
                        if changed.is_err() || *changes.borrow() == Fault::Refuse {
                            return; // drops the listener
                        }
                    }
                }
            }
        });
        FaultProxy { addr, fault }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

async fn relay(mut client: tokio::net::TcpStream, upstream: String, mut fault: watch::Receiver<Fault>) {
    let current = *fault.borrow_and_update();
    match current {
        Fault::Refuse => return,
        Fault::Hang => return hold(client).await,
        Fault::None => {}
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
    loop {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            changed = fault.changed() => {
                let now = *fault.borrow();
                match (changed, now) {
                    (Err(_), _) | (Ok(()), Fault::Refuse) => return,
                    (Ok(()), Fault::Hang) => return hold((client, server)).await,
                    (Ok(()), Fault::None) => {}
                }
            }
        }
    }
}

/// Keeps `sockets` open, silent, for as long as the runtime runs.
async fn hold<T>(sockets: T) {
    std::future::pending::<()>().await;
    drop(sockets);
}
