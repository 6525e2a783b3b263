//! A webhook receiver on loopback for the tests: records every request, answers from a script
//! (a queue of status codes, then 200).

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub delivery: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The status answered; 0 while held open.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

#[derive(Debug, Default)]
struct State {
    got: Mutex<Vec<Received>>,
    answers: Mutex<VecDeque<u16>>,
    /// Requests not answered at all (held open) while set.
    hang: Mutex<bool>,
    arrived: Notify,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://{addr}/hooks/doorstep"),
            state,
        }
    }

    /// The next `n` requests are answered `status`.
    pub fn answer_next(&self, n: usize, status: u16) {
        let mut answers = self.state.answers.lock().unwrap();
        answers.extend(std::iter::repeat_n(status, n));
    }

    /// Every request from now on is answered 200.
    pub fn clear_answers(&self) {
        self.state.answers.lock().unwrap().clear();
    }

    /// Requests are held open without an answer while `on`.
    pub fn hang(&self, on: bool) {
        *self.state.hang.lock().unwrap() = on;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until `n` requests arrived; what arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

async fn answer(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (method, path) = (req.method().to_string(), req.uri().to_string());
    let (delivery, signature, content_type) = (
        header("doorstep-delivery"),
        header("doorstep-signature"),
        header("content-type"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    if *state.hang.lock().unwrap() {
        // Seen, never answered (`answered` 0).
        state.got.lock().unwrap().push(Received {
            method,
            path,
            delivery,
            signature,
            content_type,
            body,
            answered: 0,
        });
        state.arrived.notify_waiters();
        std::future::pending::<()>().await;
        unreachable!();
    }
    let status = state.answers.lock().unwrap().pop_front().unwrap_or(200);
    state.got.lock().unwrap().push(Received {
        method,
        path,
        delivery,
        signature,
        content_type,
        body,
        answered: status,
    });
    state.arrived.notify_waiters();
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap()
}
