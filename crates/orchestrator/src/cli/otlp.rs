//! `--otlp <endpoint>`: the mission's spans (mission, stage, task, attempt, turn; see `engine::mission`)
//! exported over OTLP/HTTP with protobuf, the protocol every OpenTelemetry collector and most tracing
//! backends (Jaeger, Tempo, Honeycomb, …) accept on port 4318, so a team sees its missions where it already
//! looks at traces.
//!
//! The endpoint is checked when the command line is read ([`endpoint`]): an `http` or `https` URL with a
//! host. As with `OTEL_EXPORTER_OTLP_ENDPOINT`, a URL without a path is the collector's base and gets
//! `/v1/traces`; a URL with a path is used as it is. The export itself needs a build with the cargo
//! feature `otel` ([`ENABLED`]); the spans are sent in batches by the SDK's own thread, and what is left
//! is sent when the `Exporter` is dropped, at the end of the command.
//!
//! ```
//! let url = orchestrator::cli::otlp::endpoint("http://localhost:4318")?;
//! assert_eq!(url.as_str(), "http://localhost:4318/v1/traces");
//! assert!(orchestrator::cli::otlp::endpoint("localhost:4318").is_err());
//! # Ok::<(), String>(())
//! ```

use url::Url;

/// Whether this build can export spans over OTLP (the cargo feature `otel`).
pub const ENABLED: bool = cfg!(feature = "otel");

/// The path of the traces on an OTLP/HTTP collector.
pub const TRACES_PATH: &str = "/v1/traces";

/// The traces URL of an `--otlp` value: an `http` or `https` URL with a host; `/v1/traces` added when it
/// has no path.
///
/// # Errors
///
/// A message saying what is wrong with `text`, with an example.
pub fn endpoint(text: &str) -> Result<Url, String> {
    const EXAMPLE: &str = "e.g. http://localhost:4318";
    let mut url = Url::parse(text.trim())
        .map_err(|error| format!("`{text}` is not an OTLP endpoint: {error} ({EXAMPLE})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{text}` is not an OTLP endpoint: the scheme must be http or https, not `{}` ({EXAMPLE})",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{text}` is not an OTLP endpoint: it has no host ({EXAMPLE})"
        ));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(TRACES_PATH);
    }
    Ok(url)
}

#[cfg(feature = "otel")]
pub use export::{Exporter, OtlpError};

#[cfg(feature = "otel")]
mod export {
    use std::time::Duration;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::{Layer, Registry};
    use url::Url;

    /// How long one export request may take.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    /// How long the end of the command waits for the last spans to be sent.
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

    /// Why the OTLP export could not be set up.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot export traces to {endpoint}")]
    pub struct OtlpError {
        /// The traces URL.
        pub endpoint: Url,
        /// What the exporter said.
        #[source]
        pub source: opentelemetry_otlp::ExporterBuildError,
    }

    /// The OTLP export of this process's spans: sends what is left and stops when dropped.
    #[derive(Debug)]
    pub struct Exporter {
        provider: SdkTracerProvider,
        endpoint: Url,
    }

    /// A `tracing` layer for the registry, boxed so that the subscriber's type does not depend on the
    /// feature.
    type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

    impl Exporter {
        /// An exporter of spans to `endpoint` (a traces URL, see [`endpoint`](super::endpoint)) as the
        /// service `orchestrator`, and the `tracing` layer that feeds it.
        ///
        /// # Errors
        ///
        /// [`OtlpError`] when the exporter cannot be built (its HTTP client).
        pub(crate) fn start(endpoint: &Url) -> Result<(Exporter, BoxedLayer), OtlpError> {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(endpoint.as_str())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|source| OtlpError {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name("orchestrator")
                        .with_attribute(opentelemetry::KeyValue::new(
                            "service.version",
                            env!("CARGO_PKG_VERSION"),
                        ))
                        .build(),
                )
                .build();
            let tracer = provider.tracer("orchestrator");
            let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
            Ok((
                Exporter {
                    provider,
                    endpoint: endpoint.clone(),
                },
                layer,
            ))
        }

        /// Where the spans go.
        pub fn endpoint(&self) -> &Url {
            &self.endpoint
        }
    }

    impl Drop for Exporter {
        fn drop(&mut self) {
            if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                eprintln!(
                    "orchestrator: the last traces may not have reached {}: {error}",
                    self.endpoint
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path_and_a_full_one_is_kept() {
        assert_eq!(
            endpoint("http://localhost:4318").unwrap().as_str(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            endpoint("https://otel.example.com/").unwrap().as_str(),
            "https://otel.example.com/v1/traces"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9000/api/traces")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/api/traces"
        );
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        let error = endpoint("localhost:4318").unwrap_err();
        assert!(
            error.contains("the scheme must be http or https"),
            "{error}"
        );
        let error = endpoint("not a url").unwrap_err();
        assert!(error.contains("is not an OTLP endpoint"), "{error}");
        assert!(error.contains("e.g. http://localhost:4318"), "{error}");
        let error = endpoint("grpc://collector:4317").unwrap_err();
        assert!(error.contains("not `grpc`"), "{error}");
        let error = endpoint("http://").unwrap_err();
        assert!(error.contains("is not an OTLP endpoint"), "{error}");
    }
}
