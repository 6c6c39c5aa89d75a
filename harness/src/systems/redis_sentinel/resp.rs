//! A minimal RESP2 client (Redis and Sentinel): commands as arrays of bulk
//! strings, replies parsed with bounded sizes and nesting.
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest bulk string accepted.
const BULK_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest array accepted.
const ARRAY_ITEMS_MAX: usize = 1_000_000;
/// Deepest nesting of arrays accepted.
const DEPTH_MAX: u32 = 4;
/// Longest reply line (simple string, error, header) accepted.
const LINE_BYTES_MAX: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for simple and bulk strings.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(text) => Some(text.clone()),
            Reply::Bulk(Some(bytes)) => String::from_utf8(bytes.clone()).ok(),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Nothing was sent.
    #[error("connect to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// The command may have been delivered.
    #[error("resp exchange: {0}")]
    Exchange(String),
}

pub struct RespConnection {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl RespConnection {
    pub async fn connect(addr: SocketAddr, timeout_ms: u64) -> Result<RespConnection, RespError> {
        let error = |message: String| RespError::Connect { addr, message };
        let stream = match tokio::time::timeout(Duration::from_millis(timeout_ms), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(error(e.to_string())),
            Err(_) => return Err(error("timed out".into())),
        };
        let _ = stream.set_nodelay(true);
        Ok(RespConnection { addr, stream: BufReader::new(stream) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Send one command and read its reply (not bounded in time: callers
    /// wrap it in a timeout).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        self.stream
            .get_mut()
            .write_all(&encode(args))
            .await
            .map_err(|e| RespError::Exchange(format!("send: {e}")))?;
        read_reply(&mut self.stream, 0).await
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn exchange(message: impl Into<String>) -> RespError {
    RespError::Exchange(message.into())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<String, RespError> {
    let mut line = Vec::new();
    let read = reader
        .take(LINE_BYTES_MAX)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| exchange(format!("receive: {e}")))?;
    if read == 0 {
        return Err(exchange("connection closed"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(exchange("reply line too long or cut"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| exchange("non-UTF-8 reply line"))
}

fn length(text: &str, limit: usize) -> Result<Option<usize>, RespError> {
    let n: i64 = text.parse().map_err(|_| exchange(format!("bad length {text:?}")))?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| exchange("length overflow"))?;
    if n > limit {
        return Err(exchange(format!("length {n} over the limit {limit}")));
    }
    Ok(Some(n))
}

fn read_reply<'a, R: AsyncBufReadExt + Unpin + Send>(
    reader: &'a mut R,
    depth: u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, RespError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > DEPTH_MAX {
            return Err(exchange("reply nested too deep"));
        }
        let line = read_line(reader).await?;
        let (kind, rest) = line.split_at_checked(1).ok_or_else(|| exchange("empty reply line"))?;
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => rest.parse().map(Reply::Integer).map_err(|_| exchange(format!("bad integer {rest:?}"))),
            "$" => {
                let Some(len) = length(rest, BULK_BYTES_MAX)? else { return Ok(Reply::Bulk(None)) };
                let mut bytes = vec![0u8; len + 2];
                reader.read_exact(&mut bytes).await.map_err(|e| exchange(format!("receive bulk: {e}")))?;
                if !bytes.ends_with(b"\r\n") {
                    return Err(exchange("bulk string not terminated"));
                }
                bytes.truncate(len);
                Ok(Reply::Bulk(Some(bytes)))
            }
            "*" => {
                let Some(len) = length(rest, ARRAY_ITEMS_MAX)? else { return Ok(Reply::Array(None)) };
                let mut items = Vec::with_capacity(len.min(1024));
                for _ in 0..len {
                    items.push(read_reply(reader, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            other => Err(exchange(format!("unknown reply type {other:?}"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Result<Reply, RespError> {
        let mut reader = BufReader::new(raw);
        read_reply(&mut reader, 0).await
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(encode(&[b"SADD", b"k", b"12"]), b"*3\r\n$4\r\nSADD\r\n$1\r\nk\r\n$2\r\n12\r\n".to_vec());
    }

    #[tokio::test]
    async fn parses_every_reply_type() {
        assert_eq!(parse(b"+PONG\r\n").await.unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(parse(b"-READONLY no\r\n").await.unwrap(), Reply::Error("READONLY no".into()));
        assert_eq!(parse(b":7\r\n").await.unwrap(), Reply::Integer(7));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Reply::Array(None));
        let array = parse(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n").await.unwrap();
        let Reply::Array(Some(items)) = array else { panic!("not an array") };
        assert_eq!(items[0].text().unwrap(), "127.0.0.1");
        assert_eq!(items[1].text().unwrap(), "6379");
    }

    #[tokio::test]
    async fn rejects_bad_or_oversized_replies() {
        assert!(parse(b"?x\r\n").await.is_err());
        assert!(parse(b"$5\r\nab\r\n").await.is_err());
        assert!(parse(format!("${}\r\n", BULK_BYTES_MAX + 1).as_bytes()).await.is_err());
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").await.is_err(), "too deep");
        assert!(parse(b":12").await.is_err(), "cut");
    }
}
