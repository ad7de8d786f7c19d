//! The URL a load is aimed at: scheme, address, authority and host name.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::LoadError;

/// Where to connect and what to call the server.
pub struct Target {
    pub addr: SocketAddr,
    pub authority: String,
    pub host: String,
    pub https: bool,
}

pub fn parse_url(url: &str) -> Result<Target, LoadError> {
    let bad = || LoadError::Url(url.to_string());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    // `[::1]` → `::1`: the brackets are URL syntax, not part of the address.
    let raw = authority.host();
    let host = match raw.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
        None => raw,
    };
    // `Uri` is lenient after the host (`[::1]x`, `h:x`): only `:PORT` may follow.
    let port = match authority.as_str().strip_prefix(raw).ok_or_else(bad)? {
        "" => match https {
            true => 443,
            false => 80,
        },
        rest => rest
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(bad)?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| LoadError::Resolve(authority.to_string(), e))?
        .next()
        .ok_or_else(|| LoadError::Resolve(authority.to_string(), io::ErrorKind::NotFound.into()))?;
    Ok(Target {
        addr,
        authority: authority.to_string(),
        host: host.to_string(),
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_ports() {
        let t = parse_url("https://127.0.0.1:8443/").unwrap();
        assert_eq!(
            (t.addr.port(), t.https, t.host.as_str()),
            (8443, true, "127.0.0.1")
        );
        assert_eq!(t.authority, "127.0.0.1:8443");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!((t.addr.port(), t.host.as_str()), (8080, "::1"));
        assert_eq!(parse_url("http://[::1]/").unwrap().addr.port(), 80);
        assert_eq!(parse_url("https://localhost/x").unwrap().addr.port(), 443);
        for bad in [
            "ftp://h/",
            "http://",
            "http:///",
            "http://h:x/",
            "http://[::1/",
            "http://[::1]x/",
            "http://h:99999/",
        ] {
            assert!(matches!(parse_url(bad), Err(LoadError::Url(_))), "{bad}");
        }
    }
}
