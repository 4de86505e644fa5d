//! Small HTTP/1.1 helpers over hyper for the bench's own control calls (admin pages,
//! receiver counters) and the relay load generator's connections.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{BenchError, Result, io};

/// A kept-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Connection {
    /// Opens a connection to `addr`.
    ///
    /// # Errors
    /// When the TCP connection or the HTTP handshake fails.
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(io(format!("connecting to {addr}")))?;
        stream.set_nodelay(true).ok();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Output {
                tool: "hyper",
                detail: e.to_string(),
            })?;
        tokio::spawn(async move {
            connection.await.ok();
        });
        Ok(Self {
            sender,
            authority: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer: `(status, body)`.
    ///
    /// # Errors
    /// When the request fails or the connection closes.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", content_type)
            .body(Full::new(body))
            .map_err(|e| BenchError::Output {
                tool: "http",
                detail: e.to_string(),
            })?;
        self.sender.ready().await.map_err(|e| BenchError::Output {
            tool: "http",
            detail: e.to_string(),
        })?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| BenchError::Output {
                tool: "http",
                detail: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Output {
                tool: "http",
                detail: e.to_string(),
            })?
            .to_bytes();
        Ok((status, body))
    }
}

/// `GET http://addr/path` on a fresh connection: the body as text.
///
/// # Errors
/// When the request fails.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut connection = Connection::open(addr).await?;
    let (status, body) = connection
        .send("GET", path, "text/plain", Bytes::new())
        .await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
