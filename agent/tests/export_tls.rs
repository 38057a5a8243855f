//! The exporter over TLS with client certificates (mutual TLS), against a
//! tonic OTLP/gRPC server and an axum OTLP/HTTP server behind rustls, both
//! on 127.0.0.1:0, with a throwaway CA made by rcgen.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tocsin_agent::export::{
    BackoffPolicy, ClientTls, Delivery, ExporterOptions, Protocol, ResourceInfo, Transport,
    TransportConfig, exporter,
};
use tocsin_agent::sources::logtail::{Batch, LogRecord};
use tocsin_agent::spool::SpoolOptions;
use tokio_util::sync::CancellationToken;

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn leaf(
    name: &str,
    purpose: ExtendedKeyUsagePurpose,
    issuer: &rcgen::Issuer<'_, KeyPair>,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![purpose];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "Tocsin test CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    Pki {
        ca: ca.pem(),
        server: leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth, &ca),
        client: leaf("agent-1", ExtendedKeyUsagePurpose::ClientAuth, &ca),
    }
}

/// Log requests the server accepted.
#[derive(Default)]
struct Received(AtomicU64);

impl Received {
    fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

mod grpc_server {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
        LogsService, LogsServiceServer,
    };
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    use tonic::{Request, Response, Status};

    struct Svc(Arc<Received>);

    #[tonic::async_trait]
    impl LogsService for Svc {
        async fn export(
            &self,
            _req: Request<ExportLogsServiceRequest>,
        ) -> Result<Response<ExportLogsServiceResponse>, Status> {
            self.0.0.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(ExportLogsServiceResponse::default()))
        }
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        pki: &Pki,
        received: Arc<Received>,
        stop: CancellationToken,
    ) {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&pki.server.0, &pki.server.1))
            .client_ca_root(Certificate::from_pem(&pki.ca));
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(LogsServiceServer::new(Svc(received)))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            );
        tokio::spawn(async move {
            let _ = server.await;
        });
    }
}

mod http_server {
    use super::*;
    use axum::extract::State;
    use prost::Message;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    async fn logs(State(received): State<Arc<Received>>) -> Vec<u8> {
        received.0.fetch_add(1, Ordering::SeqCst);
        ExportLogsServiceResponse::default().encode_to_vec()
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        pki: &Pki,
        received: Arc<Received>,
        stop: CancellationToken,
    ) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pki.server.0.as_bytes())
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let app = axum::Router::new()
            .route("/v1/logs", axum::routing::post(logs))
            .with_state(received);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => r.unwrap(),
                    () = stop.cancelled() => return,
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    // A refused handshake (no client certificate) ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
            }
        });
    }
}

fn info() -> ResourceInfo {
    ResourceInfo {
        host_name: "web-1".into(),
        service_name: "host".into(),
        environment: None,
        service_version: None,
        track: None,
        agent_id: "0123456789abcdef0123456789abcdef".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    }
}

fn log_batch(id: u64) -> Batch {
    Batch {
        id,
        records: vec![LogRecord {
            body: "ERROR over TLS".into(),
            path: Arc::from(Path::new("/var/log/app.log")),
            file_id: Arc::from("file-1"),
            offset: 0,
            end_offset: 15,
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            truncated: false,
            observed_unix_nanos: 1,
            input: 0,
            attributes: Arc::new(BTreeMap::new()),
        }],
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// With the CA and a client certificate the batch is delivered and
/// acknowledged; without the client certificate the handshake fails, the
/// batch stays spooled and nothing is acknowledged.
async fn mutual_tls(protocol: Protocol) {
    let pki = pki();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Received::default());
    let stop = CancellationToken::new();
    match protocol {
        Protocol::Grpc => {
            grpc_server::serve(listener, &pki, Arc::clone(&received), stop.clone()).await;
        }
        Protocol::Http => {
            http_server::serve(listener, &pki, Arc::clone(&received), stop.clone()).await;
        }
    }

    for with_client_cert in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let transport = Transport::new(&TransportConfig {
            protocol,
            endpoint: format!("https://localhost:{port}"),
            token: None,
            tls: Some(ClientTls {
                ca_pem: Some(pki.ca.clone().into_bytes()),
                identity: with_client_cert.then(|| {
                    (
                        pki.client.0.clone().into_bytes(),
                        pki.client.1.clone().into_bytes(),
                    )
                }),
                server_name: None,
            }),
            gzip: false,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let options = ExporterOptions {
            memory_batches: 4,
            memory_bytes: 1 << 20,
            max_in_flight: 4,
            spool: SpoolOptions {
                max_bytes: 1 << 20,
                fsync: false,
            },
            backoff: BackoffPolicy {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(50),
            },
        };
        let (exp, task, mut deliveries) =
            exporter(&dir.path().join("spool"), options, transport, info()).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(task.run(shutdown.clone()));
        exp.submit_logs(&log_batch(1));
        if with_client_cert {
            let mut acks = Vec::new();
            wait_until("the batch is acknowledged", || {
                while let Ok(d) = deliveries.try_recv() {
                    acks.push(d);
                }
                !acks.is_empty()
            })
            .await;
            assert_eq!(acks, vec![Delivery::Acked { batch: 1 }]);
            assert_eq!(received.count(), 1);
        } else {
            wait_until("the refused handshake is retried from the spool", || {
                exp.counters().send_failures >= 2 && exp.pending() == (0, 1)
            })
            .await;
            assert!(deliveries.try_recv().is_err(), "nothing acknowledged");
            assert_eq!(received.count(), 0);
        }
        shutdown.cancel();
        task.await.unwrap();
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_mutual_tls() {
    mutual_tls(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mutual_tls() {
    mutual_tls(Protocol::Http).await;
}
