//! A minimal HTTP/1.1 client on tokio for JSON gateways (etcd's v3 API):
//! one keep-alive connection, one request at a time, Content-Length or
//! chunked bodies, every read bounded in bytes. No hyper: builds run on two
//! cores, and the gateway needs only this much.
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response body accepted.
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest status or header line accepted.
const LINE_BYTES_MAX: u64 = 16 * 1024;
/// Header lines accepted per response.
const HEADERS_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing was sent: the request certainly had no effect.
    #[error("connect to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// The request may have been delivered.
    #[error("http exchange: {0}")]
    Exchange(String),
}

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive connection to one address, reopened after any error.
pub struct HttpConnection {
    addr: SocketAddr,
    connect_timeout_ms: u64,
    stream: Option<BufReader<TcpStream>>,
}

impl HttpConnection {
    pub fn new(addr: SocketAddr, connect_timeout_ms: u64) -> Self {
        HttpConnection { addr, connect_timeout_ms, stream: None }
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Open the connection if it is not; returns true when it was opened now.
    pub async fn ensure_open(&mut self) -> Result<bool, HttpError> {
        if self.stream.is_some() {
            return Ok(false);
        }
        let connect_error = |message: String| HttpError::Connect { addr: self.addr, message };
        let bound = Duration::from_millis(self.connect_timeout_ms);
        let stream = match tokio::time::timeout(bound, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(connect_error(error.to_string())),
            Err(_) => return Err(connect_error("timed out".to_string())),
        };
        let _ = stream.set_nodelay(true);
        self.stream = Some(BufReader::new(stream));
        Ok(true)
    }

    /// Send one request (`body` None: GET, else POST with a JSON body) and
    /// read its response. Any error closes the connection.
    pub async fn request(&mut self, path: &str, body: Option<&[u8]>) -> Result<Response, HttpError> {
        self.ensure_open().await?;
        let result = self.exchange(path, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, path: &str, body: Option<&[u8]>) -> Result<Response, HttpError> {
        let stream = self.stream.as_mut().ok_or_else(|| HttpError::Exchange("not connected".into()))?;
        let head = request_head(self.addr, path, body.map(<[u8]>::len));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        stream.get_mut().write_all(&bytes).await.map_err(|e| HttpError::Exchange(format!("send: {e}")))?;
        read_response(stream).await
    }
}

fn request_head(addr: SocketAddr, path: &str, body_len: Option<usize>) -> String {
    match body_len {
        None => format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        Some(len) => format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        ),
    }
}

fn exchange_error(message: impl Into<String>) -> HttpError {
    HttpError::Exchange(message.into())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let read = reader
        .take(LINE_BYTES_MAX)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| exchange_error(format!("receive: {e}")))?;
    if read == 0 {
        return Err(exchange_error("connection closed"));
    }
    if line.last() != Some(&b'\n') {
        return Err(exchange_error("line too long or cut"));
    }
    String::from_utf8(line).map(|l| l.trim_end().to_string()).map_err(|_| exchange_error("non-UTF-8 header"))
}

async fn read_response<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<Response, HttpError> {
    let status_line = read_line(reader).await?;
    let status = parse_status(&status_line)?;
    let mut content_length = None;
    let mut chunked = false;
    for _ in 0..HEADERS_MAX {
        let line = read_line(reader).await?;
        if line.is_empty() {
            let body = match (chunked, content_length) {
                (true, _) => read_chunked(reader).await?,
                (false, Some(len)) => read_exact(reader, len).await?,
                (false, None) => return Err(exchange_error("response without a length")),
            };
            return Ok(Response { status, body });
        }
        let (name, value) = line.split_once(':').ok_or_else(|| exchange_error(format!("bad header {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| exchange_error("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    Err(exchange_error("too many headers"))
}

fn parse_status(line: &str) -> Result<u16, HttpError> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| exchange_error(format!("bad status line {line:?}")))
        }
        _ => Err(exchange_error(format!("bad status line {line:?}"))),
    }
}

async fn read_exact<R: AsyncBufReadExt + Unpin>(reader: &mut R, len: usize) -> Result<Vec<u8>, HttpError> {
    if len > BODY_BYTES_MAX {
        return Err(exchange_error(format!("body of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| exchange_error(format!("receive body: {e}")))?;
    Ok(body)
}

async fn read_chunked<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    // Each chunk adds at least one byte, so the body bound bounds the loop.
    loop {
        let size_line = read_line(reader).await?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| exchange_error("bad chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line; none are expected.
            for _ in 0..HEADERS_MAX {
                if read_line(reader).await?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(exchange_error("too many trailers"));
        }
        if body.len() + size > BODY_BYTES_MAX {
            return Err(exchange_error("chunked body over the limit"));
        }
        body.extend(read_exact(reader, size).await?);
        read_line(reader).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &str) -> Result<Response, HttpError> {
        let mut reader = BufReader::new(raw.as_bytes());
        read_response(&mut reader).await
    }

    #[tokio::test]
    async fn reads_content_length_and_chunked_bodies() {
        let plain = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await.unwrap();
        assert_eq!(plain, Response { status: 200, body: b"{}".to_vec() });
        let chunked = "HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked).await.unwrap(), Response { status: 400, body: b"abcde".to_vec() });
    }

    #[tokio::test]
    async fn rejects_malformed_responses() {
        assert!(parse("SPDY 200\r\n\r\n").await.is_err());
        assert!(parse("HTTP/1.1 200 OK\r\n\r\n").await.is_err(), "no length");
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").await.is_err(), "cut body");
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", BODY_BYTES_MAX + 1);
        assert!(parse(&huge).await.is_err());
    }

    #[test]
    fn request_heads_carry_length_for_posts_only() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(request_head(addr, "/health", None), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
        assert!(request_head(addr, "/v3/kv/put", Some(7)).contains("Content-Length: 7\r\n\r\n"));
    }
}
