//! The request-head reader never panics on hostile bytes, never claims more bytes than it
//! was given, reads the same head from exactly its own bytes, and calls only bodiless
//! GET/HEAD requests over HTTP/1.1 plain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_live::http_head::parse_request_head;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_request_head(data) else {
        return;
    };
    assert!(head.len <= data.len());
    assert!(!head.target.is_empty() && !head.method.is_empty());
    if head.plain {
        assert!(matches!(head.method, "GET" | "HEAD") && !head.http10);
    }
    let again = parse_request_head(&data[..head.len]).unwrap().unwrap();
    assert_eq!(again, head);
});
