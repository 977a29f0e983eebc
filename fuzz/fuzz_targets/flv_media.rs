//! Tag-body and codec-configuration parsers never panic on hostile bytes; what parses
//! re-encodes to something that parses to the same value.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use videopick_flv::{
    AudioData, AudioSpecificConfig, AvcConfig, HevcConfig, HevcSpsInfo, OnMetaData, SpsInfo,
    VideoData,
};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok(v) = VideoData::parse(&b) {
        if let Ok(again) = v.to_bytes() {
            assert_eq!(VideoData::parse(&again).expect("re-encoded video"), v);
        }
    }
    if let Ok(a) = AudioData::parse(&b) {
        assert_eq!(AudioData::parse(&a.to_bytes()).expect("re-encoded audio"), a);
    }
    if let Ok(c) = AvcConfig::parse(&b) {
        let again = c.to_bytes().expect("AVC config encodes");
        assert_eq!(AvcConfig::parse(&again).expect("re-encoded AVC config"), c);
        let _ = c.sps_info();
    }
    if let Ok(c) = HevcConfig::parse(&b) {
        let again = c.to_bytes().expect("HEVC config encodes");
        assert_eq!(HevcConfig::parse(&again).expect("re-encoded HEVC config"), c);
        let _ = c.sps_info();
        let _ = c.codec_string();
    }
    let _ = SpsInfo::parse(data);
    let _ = HevcSpsInfo::parse(data);
    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        let _ = asc.adts_header(data.len());
    }
    let _ = OnMetaData::parse(data);
});
