//! A lean HTTP/1.1 client for webhooks and SMS gateways: one connection per attempt (hyper's client
//! connection over TCP, or over rustls for https, trusting the Mozilla roots), the whole attempt
//! under one timeout. What it answers is the status code, or a short reason that names no URL
//! query, header value or body (an SMS gateway's URL may hold a phone number).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

/// An attempt that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

/// The TLS settings every https attempt uses.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Sends `request` and answers its status code; any failure or `timeout` passing is a [`Failure`].
pub async fn send(
    request: Request,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<u16, Failure> {
    match tokio::time::timeout(timeout, attempt(request, tls)).await {
        Ok(answer) => answer,
        Err(_) => Err(Failure(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

async fn attempt(request: Request, tls: &Arc<rustls::ClientConfig>) -> Result<u16, Failure> {
    let https = request.uri.scheme_str() == Some("https");
    let host = request
        .uri
        .host()
        .ok_or_else(|| Failure("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request
        .uri
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| Failure(format!("cannot connect to {host}:{port}: {}", e.kind())))?;
    let _ = tcp.set_nodelay(true);
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| Failure(format!("{host}: not a TLS server name")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| Failure(format!("TLS with {host}:{port}: {e}")))?;
        exchange(TokioIo::new(stream), request, &host, port).await
    } else {
        exchange(TokioIo::new(tcp), request, &host, port).await
    }
}

async fn exchange<S>(io: S, request: Request, host: &str, port: u16) -> Result<u16, Failure>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|e| Failure(format!("HTTP with {host}:{port}: {e}")))?;
    let connection = tokio::spawn(conn);
    let path = request
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let authority = match request.uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "doorstep-notify");
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let req = builder
        .body(Full::new(request.body))
        .map_err(|_| Failure("the request could not be built".into()))?;
    let answer = sender
        .send_request(req)
        .await
        .map_err(|e| Failure(format!("HTTP with {host}:{port}: {e}")));
    let status = match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the (small) answer so the connection ends cleanly; its content is not used.
            let _ = response.into_body().collect().await;
            Ok(status)
        }
        Err(e) => Err(e),
    };
    connection.abort();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> Request {
        Request {
            method: http::Method::POST,
            uri: url.parse().unwrap(),
            headers: vec![],
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn an_attempt_that_gets_no_answer_is_a_failure_naming_no_more_than_host_and_port() {
        let tls = tls_config();
        // Nothing listens there.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = send(
            request(&format!("http://127.0.0.1:{port}/x?phone=13912345678")),
            &tls,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(err.0.starts_with("cannot connect to 127.0.0.1:"), "{err}");
        assert!(!err.0.contains("13912345678"), "{err}");

        // A listener that accepts and never answers: the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                open.push(stream);
            }
        });
        let err = send(
            request(&format!("http://{addr}/x")),
            &tls,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.0.contains("no answer within"), "{err}");
        // https to a plain socket: the TLS handshake fails (or times out), never a panic.
        let err = send(
            request(&format!("https://{addr}/x")),
            &tls,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(!err.0.is_empty());
        held.abort();
    }
}
