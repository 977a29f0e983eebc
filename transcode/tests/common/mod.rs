//! Helpers shared by the transcode tests.

pub(crate) use videopick_testkit::ffmpeg::make_input;
