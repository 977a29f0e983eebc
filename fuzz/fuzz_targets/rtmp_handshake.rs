//! Server and client handshakes never panic on hostile bytes, in any split.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use videopick_rtmp::handshake::{ClientHandshake, ServerHandshake};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (usize::from(split) * 13).min(rest.len());
    // Server: C0 is forced to version 3 half of the time so C1/C2 paths get exercised.
    let mut input = rest.to_vec();
    if split & 1 == 0 && !input.is_empty() {
        input[0] = 3;
    }
    let mut s = ServerHandshake::new(1, 2);
    let mut buf = BytesMut::from(&input[..at]);
    if s.handle_input(&mut buf).is_ok() {
        buf.extend_from_slice(&input[at..]);
        let _ = s.handle_input(&mut buf);
        let _ = s.poll_transmit();
    }
    let mut c = ClientHandshake::new(1, 2, split & 2 == 0);
    let _ = c.poll_transmit();
    let mut buf = BytesMut::from(&input[..]);
    let _ = c.handle_input(&mut buf);
});
