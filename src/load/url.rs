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
    /// The path and query, `/` when the URL has none.
    pub path: String,
}

/// The most a mix's weights may add up to.
pub const MAX_TOTAL_WEIGHT: u64 = 100_000;

/// `URL@WEIGHT` → (URL, WEIGHT); a URL without `@` followed by digits at
/// its end weighs 1.
pub fn weighted(url: &str) -> Result<(&str, u32), LoadError> {
    match url.rsplit_once('@') {
        Some((u, w)) if !w.is_empty() && w.bytes().all(|c| c.is_ascii_digit()) => {
            match w.parse::<u32>() {
                Ok(n) if n >= 1 && u64::from(n) <= MAX_TOTAL_WEIGHT => Ok((u, n)),
                _ => Err(LoadError::Setup(format!(
                    "weight {w} of {u}: a whole number from 1 to {MAX_TOTAL_WEIGHT}"
                ))),
            }
        }
        _ => Ok((url, 1)),
    }
}

/// The order in which a client takes `weights.len()` requests, each as
/// often as its weight says, spread out rather than in runs (smooth
/// weighted round-robin, as nginx balances upstreams): `[3, 1]` is
/// `0 0 1 0`.
pub fn weighted_order(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let best = (0..weights.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
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
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let path = match path.starts_with('/') {
        true => path.to_string(),
        false => format!("/{path}"),
    };
    Ok(Target {
        path,
        addr,
        authority: authority.to_string(),
        host: host.to_string(),
        https,
    })
}

/// The path (and query) of a URL of `-i` whose scheme, host and port are
/// ignored; a line may also be just a path.
pub fn path_of(url: &str) -> Result<String, LoadError> {
    if url.starts_with('/') {
        let p: http::uri::PathAndQuery = url.parse().map_err(|_| LoadError::Url(url.into()))?;
        return Ok(p.as_str().to_string());
    }
    let uri: http::Uri = url.parse().map_err(|_| LoadError::Url(url.into()))?;
    if uri.scheme().is_none() {
        return Err(LoadError::Url(url.into()));
    }
    Ok(match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".into(),
        Some(p) if p.starts_with('/') => p.into(),
        Some(p) => format!("/{p}"),
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
        assert_eq!(t.path, "/");
        let t = parse_url("http://127.0.0.1:1/other.txt?x=1&y").unwrap();
        assert_eq!(t.path, "/other.txt?x=1&y");
        assert_eq!(parse_url("http://127.0.0.1:1").unwrap().path, "/");
        assert_eq!(parse_url("http://127.0.0.1:1?q").unwrap().path, "/?q");
        assert_eq!(path_of("https://other:9/a/b?c").unwrap(), "/a/b?c");
        assert_eq!(path_of("/just/a/path").unwrap(), "/just/a/path");
        assert!(path_of("no scheme").is_err());
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
