//! Property tests: everything this crate encodes decodes back to the same value, and the
//! streaming demuxer is indifferent to how its input is split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use videopick_flv::amf0::{self, Amf0Value};
use videopick_flv::amf3::{self, Amf3Object, Amf3Value};
use videopick_flv::{
    AacPacketType, AudioData, FlvDemuxer, FlvHeader, FlvItem, FlvMuxer, FrameType, SoundFormat,
    Tag, TagKind, VideoCodec, VideoData, VideoPacket,
};

fn finite() -> impl Strategy<Value = f64> + Clone {
    any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan())
}

fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![".{0,12}", "[a-z]{1,4}"]
}

fn key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![".{1,10}", "[a-c]{1,2}"]
}

fn amf3_value() -> impl Strategy<Value = Amf3Value> {
    let leaf = prop_oneof![
        Just(Amf3Value::Undefined),
        Just(Amf3Value::Null),
        any::<bool>().prop_map(Amf3Value::Boolean),
        (-(1i32 << 28)..(1 << 28)).prop_map(Amf3Value::Integer),
        finite().prop_map(Amf3Value::Double),
        text().prop_map(Amf3Value::String),
        text().prop_map(Amf3Value::XmlDocument),
        text().prop_map(Amf3Value::Xml),
        finite().prop_map(Amf3Value::Date),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Amf3Value::ByteArray),
        (any::<bool>(), proptest::collection::vec(any::<i32>(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorInt { fixed, items }),
        (any::<bool>(), proptest::collection::vec(any::<u32>(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorUint { fixed, items }),
        (any::<bool>(), proptest::collection::vec(finite(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorDouble { fixed, items }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            (
                proptest::collection::vec((key(), inner.clone()), 0..4),
                proptest::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(assoc, dense)| Amf3Value::Array { assoc, dense }),
            (
                text(),
                any::<bool>(),
                proptest::collection::vec((text(), inner.clone()), 0..3),
                proptest::collection::vec((key(), inner.clone()), 0..3)
            )
                .prop_map(|(class_name, dynamic, sealed, dynamic_members)| {
                    Amf3Value::Object(Box::new(Amf3Object {
                        class_name,
                        dynamic,
                        sealed,
                        dynamic_members: if dynamic { dynamic_members } else { vec![] },
                        external: None,
                    }))
                }),
            inner
                .clone()
                .prop_map(|v| Amf3Value::Object(Box::new(Amf3Object {
                    class_name: "flex.messaging.io.ArrayCollection".into(),
                    dynamic: false,
                    sealed: vec![],
                    dynamic_members: vec![],
                    external: Some(v),
                }))),
            (
                any::<bool>(),
                text(),
                proptest::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(fixed, type_name, items)| Amf3Value::VectorObject {
                    fixed,
                    type_name,
                    items
                }),
            (
                any::<bool>(),
                proptest::collection::vec((inner.clone(), inner), 0..3)
            )
                .prop_map(|(weak_keys, entries)| Amf3Value::Dictionary { weak_keys, entries }),
        ]
    })
}

fn amf0_value() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        finite().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        text().prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        Just(Amf0Value::Unsupported),
        any::<u16>().prop_map(Amf0Value::Reference),
        (finite(), any::<i16>())
            .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
        text().prop_map(Amf0Value::XmlDocument),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        let props = proptest::collection::vec((text(), inner.clone()), 0..4);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.clone().prop_map(Amf0Value::EcmaArray),
            proptest::collection::vec(inner, 0..4).prop_map(Amf0Value::StrictArray),
            (text(), props)
                .prop_map(|(class, properties)| Amf0Value::TypedObject { class, properties }),
            amf3_value().prop_map(Amf0Value::Avmplus),
        ]
    })
}

fn tag() -> impl Strategy<Value = Tag> {
    (
        prop_oneof![
            Just(TagKind::Audio),
            Just(TagKind::Video),
            Just(TagKind::Script)
        ],
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(kind, ts, data)| Tag::new(kind, ts, data))
}

fn video() -> impl Strategy<Value = VideoData> {
    let frame = prop_oneof![
        Just(FrameType::Key),
        Just(FrameType::Inter),
        Just(FrameType::DisposableInter),
        Just(FrameType::GeneratedKey)
    ];
    let body = proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
    let legacy = (
        frame.clone(),
        prop_oneof![
            Just(VideoPacket::SequenceStart),
            Just(VideoPacket::CodedFrames),
            Just(VideoPacket::SequenceEnd)
        ],
        prop_oneof![Just(VideoCodec::Avc), Just(VideoCodec::Hevc)],
        -(1i32 << 23)..(1 << 23),
        body.clone(),
    )
        .prop_map(|(frame_type, packet, codec, cts, body)| VideoData {
            frame_type,
            codec,
            packet,
            composition_time: cts,
            enhanced: false,
            body,
        });
    let legacy_other = (
        frame.clone(),
        prop_oneof![Just(VideoCodec::H263), Just(VideoCodec::Vp6)],
        body.clone(),
    )
        .prop_map(|(frame_type, codec, body)| VideoData {
            frame_type,
            codec,
            packet: VideoPacket::CodedFrames,
            composition_time: 0,
            enhanced: false,
            body,
        });
    let enhanced = (
        frame,
        prop_oneof![
            Just(VideoCodec::Avc),
            Just(VideoCodec::Hevc),
            Just(VideoCodec::Av1),
            Just(VideoCodec::Vp9)
        ],
        prop_oneof![
            Just(VideoPacket::SequenceStart),
            Just(VideoPacket::CodedFrames),
            Just(VideoPacket::CodedFramesX),
            Just(VideoPacket::SequenceEnd),
            Just(VideoPacket::Metadata),
            Just(VideoPacket::Mpeg2TsSequenceStart)
        ],
        -(1i32 << 23)..(1 << 23),
        body,
    )
        .prop_map(|(frame_type, codec, packet, cts, body)| {
            let has_cts = packet == VideoPacket::CodedFrames
                && matches!(codec, VideoCodec::Avc | VideoCodec::Hevc);
            VideoData {
                frame_type,
                codec,
                packet,
                composition_time: if has_cts { cts } else { 0 },
                enhanced: true,
                body,
            }
        });
    prop_oneof![legacy, legacy_other, enhanced]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn amf0_round_trip(values in proptest::collection::vec(amf0_value(), 1..4)) {
        let bytes = amf0::encode_all(&values);
        prop_assert_eq!(amf0::decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn amf3_round_trip(values in proptest::collection::vec(amf3_value(), 1..4)) {
        let bytes = amf3::encode_all(&values);
        let mut d = amf3::Amf3Decoder::new(&bytes, amf0::AmfLimits::default());
        for v in &values {
            prop_assert_eq!(&d.decode().unwrap(), v);
        }
        prop_assert!(d.remaining().is_empty());
    }

    #[test]
    fn amf_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = amf0::decode_all(&bytes);
        let _ = amf3::decode(&bytes);
    }

    #[test]
    fn flv_mux_demux_any_split(tags in proptest::collection::vec(tag(), 0..8), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut mux = FlvMuxer::new();
        let mut file = BytesMut::new();
        mux.write_header(FlvHeader { version: 1, has_audio: true, has_video: true }, &mut file);
        for t in &tags {
            mux.write_tag(t, &mut file).unwrap();
        }
        let file = file.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(file.len() + 1)).collect();
        points.push(file.len());
        points.sort_unstable();
        let mut demux = FlvDemuxer::with_options(videopick_flv::DemuxOptions::default().strict_previous_tag_size(true));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points {
            buf.extend_from_slice(&file[at..p]);
            at = p;
            while let Some(item) = demux.decode(&mut buf).unwrap() {
                got.push(item);
            }
        }
        prop_assert!(buf.is_empty(), "bytes left over: {}", buf.len());
        prop_assert!(matches!(got.first(), Some(FlvItem::Header(_))));
        let got_tags: Vec<Tag> = got.into_iter().skip(1).map(|i| match i { FlvItem::Tag(t) => t, FlvItem::Header(_) => panic!("two headers") }).collect();
        prop_assert_eq!(got_tags, tags);
    }

    #[test]
    fn flv_demux_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut d = FlvDemuxer::new();
        let mut b = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x09"[..]);
        b.extend_from_slice(&bytes);
        while let Ok(Some(_)) = d.decode(&mut b) {}
    }

    #[test]
    fn video_header_round_trip(v in video()) {
        let bytes = v.to_bytes().unwrap();
        prop_assert_eq!(VideoData::parse(&bytes).unwrap(), v);
    }

    #[test]
    fn media_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let b = Bytes::from(bytes);
        let _ = VideoData::parse(&b);
        let _ = AudioData::parse(&b);
        let _ = videopick_flv::AvcConfig::parse(&b);
        let _ = videopick_flv::HevcConfig::parse(&b);
        let _ = videopick_flv::SpsInfo::parse(&b);
        let _ = videopick_flv::HevcSpsInfo::parse(&b);
        let _ = videopick_flv::AudioSpecificConfig::parse(&b);
        let _ = videopick_flv::OnMetaData::parse(&b);
    }

    #[test]
    fn audio_header_round_trip(fmt in 0u8..16, rate in 0u8..4, s16 in any::<bool>(), stereo in any::<bool>(), raw in any::<bool>(), body in proptest::collection::vec(any::<u8>(), 0..20)) {
        prop_assume!(fmt != 9);
        let format = SoundFormat::from_bits(fmt);
        let a = AudioData {
            format,
            rate,
            sixteen_bit: s16,
            stereo,
            aac_packet_type: (format == SoundFormat::Aac).then_some(if raw { AacPacketType::Raw } else { AacPacketType::SequenceHeader }),
            body: Bytes::from(body),
        };
        prop_assert_eq!(AudioData::parse(&a.to_bytes()).unwrap(), a);
    }
}

#[test]
fn demux_every_split_point_of_a_real_stream() {
    let tags = vec![
        Tag::new(
            TagKind::Script,
            0,
            videopick_flv::OnMetaData::default().to_script_bytes(),
        ),
        Tag::new(
            TagKind::Video,
            0,
            &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"[..],
        ),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
        Tag::new(
            TagKind::Video,
            40,
            &b"\x17\x01\x00\x00\x28\x00\x00\x00\x02\x65\x88"[..],
        ),
        Tag::new(TagKind::Audio, 23, &b"\xaf\x01\x21\x00"[..]),
        Tag::new(
            TagKind::Video,
            0x0100_0000,
            &b"\x27\x01\x00\x00\x00\x00\x00\x00\x01\x41"[..],
        ),
    ];
    let mut file = BytesMut::new();
    let mut mux = FlvMuxer::new();
    mux.write_header(
        FlvHeader {
            version: 1,
            has_audio: true,
            has_video: true,
        },
        &mut file,
    );
    for t in &tags {
        mux.write_tag(t, &mut file).unwrap();
    }
    for split in 0..=file.len() {
        let mut d = FlvDemuxer::new();
        let mut got = Vec::new();
        let mut buf = BytesMut::from(&file[..split]);
        while let Some(i) = d.decode(&mut buf).unwrap() {
            got.push(i);
        }
        buf.extend_from_slice(&file[split..]);
        while let Some(i) = d.decode(&mut buf).unwrap() {
            got.push(i);
        }
        let got: Vec<Tag> = got
            .into_iter()
            .filter_map(|i| match i {
                FlvItem::Tag(t) => Some(t),
                FlvItem::Header(_) => None,
            })
            .collect();
        assert_eq!(got, tags, "split at {split}");
    }
}
