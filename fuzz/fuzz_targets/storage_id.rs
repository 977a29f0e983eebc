//! Id parsing: never panics, and every accepted id is one plain path component that keeps
//! its path inside its area.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use videopick_storage::{UploadId, VideoId, id, shard};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let accepted = id::validate("id", s).is_ok();
    assert_eq!(accepted, UploadId::new(s).is_ok());
    assert_eq!(accepted, s.parse::<VideoId>().is_ok());
    if accepted {
        let comps: Vec<_> = Path::new(s).components().collect();
        assert_eq!(comps.len(), 1, "{s:?} is not one component");
        assert!(matches!(comps[0], Component::Normal(_)), "{s:?}");
        let (a, b) = shard(s);
        let p = Path::new("/root/vod").join(a).join(b).join(s);
        assert!(p.starts_with("/root/vod"));
        assert!(p.components().all(|c| matches!(c, Component::Normal(_) | Component::RootDir)));
        assert_eq!(VideoId::new(s).unwrap().as_str(), s);
    }
});
