//! The platform's enrollment endpoint: an `https://host[:port][/prefix]` URL, parsed by hand
//! (the agent needs nothing more than this from a URL library).

use std::fmt;

use rustls::pki_types::ServerName;

/// Port used when the URL names none.
const DEFAULT_PORT: u16 = 443;

/// A parsed `https` enrollment URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// Path prefix without a trailing slash (`""` for the root).
    prefix: String,
}

/// Why a URL is not a usable enrollment endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enrollment URL {url:?}: {reason}")]
pub struct EndpointError {
    url: String,
    reason: &'static str,
}

impl Endpoint {
    /// Parses `https://host[:port][/prefix]`; IPv6 hosts go in brackets (`https://[::1]:8443`).
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let fail = |reason| EndpointError {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| fail("must start with https://"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if path.contains(['?', '#']) || authority.contains(['?', '#', '@']) {
            return Err(fail(
                "must not carry a query, a fragment or user information",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| fail("unclosed '[' in the host"))?;
                host.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| fail("invalid IPv6 address"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(fail("has no host"));
        }
        if ServerName::try_from(host).is_err() {
            return Err(fail("invalid host name"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(fail("invalid port")),
            },
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The host: what the platform's certificate must name on renewal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS server name (a DNS name or an IP address).
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.host.clone())
            .expect("checked by Endpoint::parse, and the host never changes")
    }

    /// The request path for `route` (`/enroll/v1/enroll`) under the URL's prefix.
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.prefix)
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_hosts_ports_and_prefixes() {
        let e = Endpoint::parse("https://Platform.example:8443/").unwrap();
        assert_eq!((e.host(), e.port()), ("platform.example", 8443));
        assert_eq!(e.path("/enroll/v1/enroll"), "/enroll/v1/enroll");
        let e = Endpoint::parse("https://10.0.0.1/beffroi").unwrap();
        assert_eq!((e.host(), e.port()), ("10.0.0.1", 443));
        assert_eq!(e.path("/enroll/v1/renew"), "/beffroi/enroll/v1/renew");
        let e = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!((e.host(), e.port()), ("::1", 9000));
        assert_eq!(e.to_string(), "https://[::1]:9000");
        assert!(matches!(e.server_name(), ServerName::IpAddress(_)));
    }

    #[test]
    fn refuses_what_is_not_an_https_endpoint() {
        for (url, reason) in [
            ("http://platform.example", "https://"),
            ("https://", "no host"),
            ("https://:8443", "no host"),
            ("https://platform.example:0", "port"),
            ("https://platform.example:https", "port"),
            ("https://[::1:8443", "unclosed"),
            ("https://platform.example/?a=b", "query"),
            ("https://user@platform.example", "user"),
            ("https://bad host", "host name"),
        ] {
            let error = Endpoint::parse(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }
}
