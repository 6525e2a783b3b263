//! The reference dispatch console at `/console/`: its embedded files ([`doorstep_console`]) and the
//! one thing it asks outside gRPC, who the caller is (`/console/session`). [`ConsoleLayer`] sits
//! outside gRPC-Web, which refuses anything but a POST: a `GET` or `HEAD` under `/console` is answered
//! here and every other request passes on untouched.
//!
//! The page calls the API over gRPC-Web on the same origin, so it needs no CORS. Its
//! Content-Security-Policy allows only this origin's scripts, styles and calls: the console makes no
//! request anywhere else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use doorstep_engine::{Principal, Rpc};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::gate::Gate;

/// Where the console lives.
pub const PREFIX: &str = "/console";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Answers `GET`/`HEAD /console/…` (see the module); everything else goes to the inner service.
#[derive(Debug, Clone)]
pub struct ConsoleLayer {
    gate: Arc<Gate>,
}

impl ConsoleLayer {
    pub fn new(gate: Arc<Gate>) -> Self {
        ConsoleLayer { gate }
    }
}

impl<S> Layer<S> for ConsoleLayer {
    type Service = Console<S>;

    fn layer(&self, inner: S) -> Console<S> {
        Console {
            inner,
            gate: Arc::clone(&self.gate),
        }
    }
}

/// See [`ConsoleLayer`].
#[derive(Debug, Clone)]
pub struct Console<S> {
    inner: S,
    gate: Arc<Gate>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<Request<ReqBody>> for Console<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let ours = matches!(*request.method(), Method::GET | Method::HEAD)
            && (path == PREFIX || path.starts_with("/console/"));
        if !ours {
            // The service made ready by `poll_ready` is the one called; a clone takes its place.
            let clone = self.inner.clone();
            let mut ready = std::mem::replace(&mut self.inner, clone);
            return Box::pin(ready.call(request));
        }
        let gate = Arc::clone(&self.gate);
        Box::pin(async move { Ok(answer(&gate, request).await) })
    }
}

async fn answer<B>(gate: &Gate, request: Request<B>) -> Response<Body> {
    let head = request.method() == Method::HEAD;
    let path = request.uri().path().to_owned();
    let mut response = match path.strip_prefix("/console/") {
        // The page's relative URLs need the trailing slash.
        None => redirect(),
        Some("session") => session(gate, request).await,
        Some(file) => match doorstep_console::asset(file) {
            Some(asset) => file_response(asset),
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}

fn redirect() -> Response<Body> {
    let mut response = plain(StatusCode::MOVED_PERMANENTLY, "");
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/console/"));
    response
}

fn file_response(asset: doorstep_console::Asset) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(asset.bytes),
    )));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    // The files change with the binary: a browser revalidates rather than keep an old console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(text.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Who the bearer token (or the local principal of an unauthenticated loopback service) is, as
/// JSON: what the console needs to choose its views and actions. It passes the same gate as a call
/// that everyone may make (reading the jurisdiction tree), so a bad token is refused, counted and
/// throttled exactly as on gRPC.
async fn session<B>(gate: &Gate, request: Request<B>) -> Response<Body> {
    let request = tonic::Request::from_http(request.map(|_| ()));
    let mut response = match gate.admit(&request, Rpc::GetNode).await {
        Ok(principal) => json(StatusCode::OK, &principal_json(&principal)),
        Err(status) => {
            let code = match status.code() {
                tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = format!("{{\"error\":{}}}", json_string(status.message()));
            json(code, &body)
        }
    };
    // A principal is not for caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn principal_json(principal: &Principal) -> String {
    let optional = |value: Option<&str>| value.map_or_else(|| "null".to_owned(), json_string);
    format!(
        "{{\"name\":{},\"role\":{},\"scope\":{},\"unit\":{},\"authenticated\":{}}}",
        json_string(&principal.name),
        json_string(principal.role.as_str()),
        optional(principal.scope.as_ref().map(|scope| scope.as_str())),
        optional(principal.unit.as_ref().map(|unit| unit.as_str())),
        principal.token.is_some(),
    )
}

fn json(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // `<` too, so that the text can never close a script element it is pasted into.
            c if (c as u32) < 0x20 || c == '<' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// The console in front of a stand-in for the gRPC services, which marks what reaches it.
    fn console() -> Console<
        tower::util::BoxCloneService<Request<Body>, Response<Body>, std::convert::Infallible>,
    > {
        let gate = Arc::new(Gate::new(
            Arc::new(doorstep_engine::LocalAllAccess),
            crate::RateLimit::default(),
        ));
        let grpc = tower::service_fn(|_: Request<Body>| async {
            let mut response = Response::new(Body::empty());
            response
                .headers_mut()
                .insert("x-reached", HeaderValue::from_static("grpc"));
            Ok(response)
        });
        ConsoleLayer::new(gate).layer(tower::util::BoxCloneService::new(grpc))
    }

    async fn call(method: Method, uri: &str) -> (Response<()>, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = console().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, ()),
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_answered_with_their_types_and_a_strict_policy() {
        let (response, body) = call(Method::GET, "/console/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(body.contains("console.js"), "{body}");
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("connect-src 'self'") && policy.contains("default-src 'none'"));
        assert_eq!(
            response.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );

        let (response, body) = call(Method::GET, "/console/console.js").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert_eq!(
            body.len(),
            doorstep_console::asset("console.js").unwrap().bytes.len()
        );

        let (response, body) = call(Method::HEAD, "/console/console.css").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body.is_empty(), "HEAD answers headers only");

        let (response, _) = call(Method::GET, "/console").await;
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[header::LOCATION], "/console/");

        for missing in [
            "/console/nothing.js",
            "/console/../Cargo.toml",
            "/console/dist/index.html",
        ] {
            let (response, _) = call(Method::GET, missing).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[tokio::test]
    async fn the_session_names_the_local_principal_of_an_open_service() {
        let (response, body) = call(Method::GET, "/console/session").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            body,
            r#"{"name":"local","role":"admin","scope":null,"unit":null,"authenticated":false}"#
        );
    }

    #[tokio::test]
    async fn everything_else_passes_on_to_the_grpc_services() {
        for (method, uri) in [
            (Method::POST, "/doorstep.v1.TicketService/GetTicket"),
            (Method::POST, "/console/"),
            (Method::OPTIONS, "/console/session"),
            (Method::GET, "/consoles"),
            (Method::GET, "/"),
        ] {
            let (response, _) = call(method.clone(), uri).await;
            assert_eq!(response.headers()["x-reached"], "grpc", "{method} {uri}");
        }
    }

    #[test]
    fn json_strings_escape_quotes_controls_and_angle_brackets() {
        assert_eq!(json_string("a\"b\\c\n</"), "\"a\\\"b\\\\c\\u000a\\u003c/\"");
        assert_eq!(json_string("解放路"), "\"解放路\"");
    }
}
