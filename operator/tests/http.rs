//! The operator's HTTP endpoints, served on a loopback port.

use std::sync::Arc;

use kudu_operator::http::{Readiness, router, serve};
use kudu_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let (metrics, registry) = Metrics::registered();
    metrics.reconciliations.inc();
    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router(Arc::new(registry), readiness.clone()), async {
        let _ = stop_rx.await;
    }));

    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 503);
    readiness.set(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("kudu_operator_reconciliations_total 1"), "{body}");

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
