//! Reading request bodies: a size limit on what arrives and on what it inflates to, and
//! `Content-Encoding: gzip` (Envoy's OpenTelemetry exporter and most Zipkin and OTLP
//! clients can compress). Chunked bodies (Envoy's Zipkin tracer sends no
//! `content-length`) are read like any other; hyper removes the framing.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::read::GzDecoder;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived, or the body inflates to more than the limit.
    #[error("the body is larger than {max} bytes (--max-body); send smaller batches")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The connection failed while reading.
    #[error("could not read the request body: {0}")]
    Read(String),
    /// A `Content-Encoding` other than `gzip` or `identity`.
    #[error("content-encoding {0:?} is not supported; send gzip or uncompressed bodies")]
    UnsupportedEncoding(String),
    /// The body says gzip but is not.
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
}

/// Reads `body` (at most `max` bytes on the wire) and inflates it when
/// `Content-Encoding: gzip` (at most `max` bytes inflated).
///
/// # Errors
/// [`BodyError`] naming what is wrong.
pub async fn read(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, BodyError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let gzip = match encoding.as_str() {
        "" | "identity" => false,
        "gzip" | "x-gzip" => true,
        other => return Err(BodyError::UnsupportedEncoding(other.to_owned())),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > crate::metrics::as_u64(max)) {
        return Err(BodyError::TooLarge { max });
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(BodyError::TooLarge { max });
        }
        Err(e) => return Err(BodyError::Read(e.to_string())),
    };
    if gzip { gunzip(&bytes, max) } else { Ok(bytes) }
}

/// Inflates a gzip body, refusing to produce more than `max` bytes (a small body can
/// inflate to gigabytes).
///
/// # Errors
/// [`BodyError::Gzip`] for a body that is not gzip, [`BodyError::TooLarge`] past `max`.
pub fn gunzip(compressed: &[u8], max: usize) -> Result<Bytes, BodyError> {
    let mut inflated = Vec::with_capacity(compressed.len().saturating_mul(4).min(max));
    let limit = crate::metrics::as_u64(max).saturating_add(1);
    GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|e| BodyError::Gzip(e.to_string()))?;
    if inflated.len() > max {
        return Err(BodyError::TooLarge { max });
    }
    Ok(Bytes::from(inflated))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// Plain and gzip bodies read the same; unknown encodings and bad gzip are refused.
    #[tokio::test]
    async fn reads_plain_and_gzip() {
        let data = b"[{\"traceId\":\"1\"}]".repeat(10);
        let plain = read(&HeaderMap::new(), Body::from(data.clone()), 1024).await;
        assert_eq!(plain.unwrap(), data);
        let gz = headers(&[(header::CONTENT_ENCODING, "gzip")]);
        let inflated = read(&gz, Body::from(gzip(&data)), 1024).await;
        assert_eq!(inflated.unwrap(), data);
        let br = headers(&[(header::CONTENT_ENCODING, "br")]);
        assert!(matches!(
            read(&br, Body::from("x"), 1024).await,
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            read(&gz, Body::from("not gzip"), 1024).await,
            Err(BodyError::Gzip(_))
        ));
    }

    /// The limit holds on the wire, in the declared length, and after inflating.
    #[tokio::test]
    async fn limits_wire_and_inflated_size() {
        let big = vec![b'a'; 100_000];
        assert_eq!(
            read(&HeaderMap::new(), Body::from(big.clone()), 1000).await,
            Err(BodyError::TooLarge { max: 1000 })
        );
        let declared = headers(&[(header::CONTENT_LENGTH, "5000")]);
        assert_eq!(
            read(&declared, Body::from("x"), 1000).await,
            Err(BodyError::TooLarge { max: 1000 })
        );
        // 100 kB of one letter compresses to a few hundred bytes: a bomb in miniature.
        let bomb = gzip(&big);
        assert!(bomb.len() < 1000);
        let gz = headers(&[(header::CONTENT_ENCODING, "gzip")]);
        assert_eq!(
            read(&gz, Body::from(bomb), 1000).await,
            Err(BodyError::TooLarge { max: 1000 })
        );
        assert_eq!(gunzip(&gzip(&[b'a'; 1000]), 1000).unwrap().len(), 1000);
    }
}
