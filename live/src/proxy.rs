//! The real client behind a trusted proxy: the PROXY protocol (v1 text and v2 binary, as
//! HAProxy and Nginx's `proxy_protocol on` send it before a proxied TCP stream such as
//! RTMP), and `X-Forwarded-For` / `Forwarded` for HTTP. Only peers listed as trusted are
//! believed; anyone else's headers are ignored.
//!
//! The PROXY header parser is sans-IO, bounded and never panics on hostile bytes:
//!
//! ```
//! use videopick_live::proxy::{ProxyHeader, parse_proxy_header};
//!
//! let line = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 1935\r\n\x03rest";
//! let (header, used) = parse_proxy_header(line).unwrap().unwrap();
//! assert_eq!(used, line.len() - 5);
//! assert_eq!(header, ProxyHeader::Proxied {
//!     source: "203.0.113.7:51234".parse().unwrap(),
//!     destination: "10.0.0.2:1935".parse().unwrap(),
//! });
//! // Not enough bytes yet: Ok(None).
//! assert_eq!(parse_proxy_header(b"PROXY TCP4 203.0").unwrap(), None);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included (the spec's limit).
pub const V1_MAX: usize = 107;
/// Longest v2 header accepted (16-byte preamble plus addresses and TLVs).
pub const V2_MAX: usize = 16 + 1024;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy's own connection (health check, `LOCAL`, `UNKNOWN`): keep the peer address.
    Local,
    /// A proxied connection from `source` to `destination`.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Neither a v1 nor a v2 header.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A v1 line longer than 107 bytes or a v2 header longer than the limit.
    #[error("PROXY header too long")]
    TooLong,
    /// A header whose fields do not parse.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Parse a PROXY header at the start of `buf`: the header and the bytes it used, `Ok(None)`
/// when more bytes are needed.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let sig = V2_SIGNATURE.len().min(buf.len());
    if buf[..sig] == V2_SIGNATURE[..sig] {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let p = b"PROXY ".len().min(buf.len());
    if buf[..p] == b"PROXY "[..p] {
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::Malformed("not text"))?;
    let mut f = line.split(' ');
    let _proxy = f.next();
    let header = match f.next() {
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(proto @ ("TCP4" | "TCP6")) => {
            let mut next = || f.next().ok_or(ProxyError::Malformed("missing field"));
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            if f.next().is_some() {
                return Err(ProxyError::Malformed("extra field"));
            }
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip = IpAddr::from_str(s).map_err(|_| ProxyError::Malformed("address"))?;
                match (proto, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyError::Malformed("address family")),
                }
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                // Decimal, no sign, no leading zeros beyond "0".
                if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
                    return Err(ProxyError::Malformed("port"));
                }
                s.parse().map_err(|_| ProxyError::Malformed("port"))
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(ProxyError::Malformed("protocol")),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("version"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > V2_MAX {
        return Err(ProxyError::TooLong);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let header = match ver_cmd & 0x0f {
        0 => ProxyHeader::Local,
        1 => match buf[13] {
            // TCP or UDP over IPv4.
            0x11 | 0x12 => {
                let a = body
                    .get(..12)
                    .ok_or(ProxyError::Malformed("short IPv4 block"))?;
                let ip = |o: usize| Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]);
                let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0).into(), port(8)),
                    destination: SocketAddr::new(ip(4).into(), port(10)),
                }
            }
            // TCP or UDP over IPv6.
            0x21 | 0x22 => {
                let a = body
                    .get(..36)
                    .ok_or(ProxyError::Malformed("short IPv6 block"))?;
                let ip = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&a[o..o + 16]);
                    Ipv6Addr::from(b)
                };
                let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0).into(), port(32)),
                    destination: SocketAddr::new(ip(16).into(), port(34)),
                }
            }
            // Unix sockets or unspecified: nothing to take from it.
            _ => ProxyHeader::Local,
        },
        _ => return Err(ProxyError::Malformed("command")),
    };
    Ok(Some((header, total)))
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an address or a CIDR network");
        let (ip, bits) = match s.trim().split_once('/') {
            Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let net = IpAddr::from_str(ip).map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The peers whose word on the real client is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl FromStr for TrustedProxies {
    type Err = String;
    /// A comma-separated list of addresses and CIDR networks (empty: trust nobody).
    fn from_str(s: &str) -> Result<TrustedProxies, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(networks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of an HTTP request from `peer`: when `peer` is trusted, the right-most
    /// address of `Forwarded` (`for=`) or else `X-Forwarded-For` that is not itself a
    /// trusted proxy; otherwise `peer`. Malformed entries end the walk (the last good
    /// address is kept). Addresses without a port get port 0.
    pub fn client_addr(
        &self,
        peer: SocketAddr,
        forwarded: Option<&str>,
        x_forwarded_for: Option<&str>,
    ) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops: Vec<&str> = match (forwarded, x_forwarded_for) {
            (Some(f), _) => f
                .split(',')
                .filter_map(|elem| {
                    elem.split(';').find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                    })
                })
                .collect(),
            (None, Some(x)) => x.split(',').map(str::trim).collect(),
            (None, None) => return peer,
        };
        let mut client = peer;
        for hop in hops.iter().rev().take(32) {
            let Some(addr) = parse_hop(hop) else { break };
            client = addr;
            if !self.trusts(addr.ip()) {
                break;
            }
        }
        client
    }
}

/// One hop of `Forwarded` (`192.0.2.1`, `"[2001:db8::1]:4711"`) or `X-Forwarded-For`.
fn parse_hop(hop: &str) -> Option<SocketAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(a) = SocketAddr::from_str(hop) {
        return Some(a);
    }
    let ip = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    IpAddr::from_str(ip).ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | cmd);
        b.push(fam);
        b.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn v1_lines() {
        let ok = b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 1935\r\n";
        assert_eq!(
            parse_proxy_header(ok).unwrap(),
            Some((
                ProxyHeader::Proxied {
                    source: "[2001:db8::1]:4711".parse().unwrap(),
                    destination: "[2001:db8::2]:1935".parse().unwrap(),
                },
                ok.len()
            ))
        );
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN\r\n").unwrap(),
            Some((ProxyHeader::Local, 15))
        );
        // Extra field, wrong family, port out of range, leading zero, unknown protocol.
        let malformed = [
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ];
        let accepted: Vec<&str> = malformed
            .into_iter()
            .filter(|l| {
                !matches!(
                    parse_proxy_header(l.as_bytes()),
                    Err(ProxyError::Malformed(_))
                )
            })
            .collect();
        assert!(accepted.is_empty(), "{accepted:?}");
        assert_eq!(parse_proxy_header(b"PRO").unwrap(), None);
        assert_eq!(
            parse_proxy_header(b"GET / HTTP/1.1"),
            Err(ProxyError::NotProxy)
        );
        assert_eq!(
            parse_proxy_header(b"\x03\x00\x00"),
            Err(ProxyError::NotProxy)
        );
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(parse_proxy_header(&long), Err(ProxyError::TooLong));
    }

    #[test]
    fn v2_headers() {
        let body = [
            203, 0, 113, 7, 10, 0, 0, 2, 0xc8, 0x22, 0x07, 0x8f, 0xee, 0xee,
        ];
        let h = v2(1, 0x11, &body);
        assert_eq!(
            parse_proxy_header(&h).unwrap(),
            Some((
                ProxyHeader::Proxied {
                    source: "203.0.113.7:51234".parse().unwrap(),
                    destination: "10.0.0.2:1935".parse().unwrap(),
                },
                h.len()
            ))
        );
        // Every prefix needs more bytes.
        for n in 0..h.len() {
            assert_eq!(parse_proxy_header(&h[..n]).unwrap(), None, "{n}");
        }
        assert_eq!(
            parse_proxy_header(&v2(0, 0, &[])).unwrap(),
            Some((ProxyHeader::Local, 16))
        );
        assert!(parse_proxy_header(&v2(1, 0x21, &[0; 10])).is_err());
        assert!(parse_proxy_header(&v2(5, 0x11, &body)).is_err());
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse_proxy_header(&huge), Err(ProxyError::TooLong));
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let t: TrustedProxies = "10.0.0.0/8, ::1".parse().unwrap();
        let proxy: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.9:5555".parse().unwrap();
        let xff = Some("203.0.113.7, 10.9.9.9");
        assert_eq!(
            t.client_addr(proxy, None, xff).ip().to_string(),
            "203.0.113.7"
        );
        assert_eq!(t.client_addr(stranger, None, xff), stranger);
        // A client cannot smuggle an address in front of the real one.
        let spoofed = Some("1.1.1.1, 203.0.113.7");
        assert_eq!(
            t.client_addr(proxy, None, spoofed).ip().to_string(),
            "203.0.113.7"
        );
        let fwd = Some(r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#);
        assert_eq!(
            t.client_addr(proxy, fwd, xff),
            "[2001:db8:cafe::17]:4711".parse().unwrap()
        );
        assert_eq!(t.client_addr(proxy, None, Some("garbage")), proxy);
        assert_eq!(t.client_addr(proxy, None, None), proxy);
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
        assert!(t.trusts(mapped.ip()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
