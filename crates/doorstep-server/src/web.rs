//! What browsers need beyond gRPC-Web itself (which `tonic-web` translates): CORS for the configured
//! origins only ([`CorsLayer`]). A request from any other origin, or without one, passes by untouched:
//! no `Access-Control-*` header answers it, so a browser refuses the cross-origin call, and a preflight
//! reaches gRPC-Web's own refusal of anything but a POST.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use tower::util::Either;
use tower::util::future::EitherResponseFuture;
use tower::{Layer, Service};
use tower_http::cors::{self, AllowOrigin};

/// The headers a gRPC-Web client sends that a preflight must allow.
const REQUEST_HEADERS: [&str; 5] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "authorization",
    "grpc-timeout",
];
/// The trailers-as-headers a gRPC-Web client must be able to read.
const RESPONSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// CORS for a fixed list of origins (`https://console.example.org`); see the module.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    origins: Arc<[HeaderValue]>,
    cors: cors::CorsLayer,
}

impl CorsLayer {
    /// CORS for these origins; `None` when there are none (no layer at all); an origin that is not
    /// a valid header value is an error naming it.
    pub fn for_origins(origins: &[String]) -> std::io::Result<Option<CorsLayer>> {
        if origins.is_empty() {
            return Ok(None);
        }
        let origins = origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("CORS origin {origin:?} is not a valid header value"),
                    )
                })
            })
            .collect::<std::io::Result<Arc<[_]>>>()?;
        let cors = cors::CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(REQUEST_HEADERS.map(HeaderName::from_static))
            .expose_headers(RESPONSE_HEADERS.map(HeaderName::from_static));
        Ok(Some(CorsLayer { origins, cors }))
    }
}

impl<S: Clone> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service answering CORS for the configured origins (see [`CorsLayer`]).
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    layer: CorsLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherResponseFuture<cors::ResponseFuture<S::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service made ready by `poll_ready` is the one called; a clone takes its place.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| self.layer.origins.contains(origin));
        let mut service = if allowed {
            Either::Left(self.layer.cors.layer(ready))
        } else {
            Either::Right(ready)
        };
        service.call(request)
    }
}
