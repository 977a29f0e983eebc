//! The PROXY protocol parser never panics on hostile bytes, never claims more bytes than it
//! was given, and what it reads as a v1 header reads back the same when written again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_live::proxy::{ProxyHeader, V1_MAX, V2_MAX, parse_proxy_header};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, used))) = parse_proxy_header(data) else {
        return;
    };
    assert!(used <= data.len() && used <= V2_MAX);
    if data.starts_with(b"PROXY ") {
        assert!(used <= V1_MAX);
        if let ProxyHeader::Proxied {
            source,
            destination,
        } = header
        {
            let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            let line = format!(
                "PROXY {proto} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            );
            let again = parse_proxy_header(line.as_bytes()).unwrap().unwrap();
            assert_eq!(again, (header, line.len()));
        }
    }
});
