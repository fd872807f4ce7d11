//! How the router ranks experts, shared by the top-k kernel and the host's tests: a logit's
//! *rank key* is a `u32` whose unsigned order is the order of preference.
//!
//! Larger logits rank first, in the IEEE total order (so `+0.0` before `-0.0`, `-inf` last of
//! the numbers); NaN ranks after every number; ties go to the lower expert index (the kernel
//! compares indices). Key 0 is never a logit's: it marks an expert that is absent or already
//! chosen, so a top-k over `experts >= k` entries always picks `k` distinct experts below
//! `experts`, whatever the logits hold.

/// The key of "no expert here": below every logit's key.
pub const ABSENT: u32 = 0;
/// The key every NaN gets: above [`ABSENT`], below every number's key.
pub const NAN_KEY: u32 = 1;

/// The rank key of `logit` (see the module documentation).
#[inline(always)]
pub const fn rank_key(logit: f32) -> u32 {
    if logit.is_nan() {
        return NAN_KEY;
    }
    let bits = logit.to_bits();
    // Negative numbers: flip all bits (larger magnitude, smaller key); non-negative: set the
    // sign bit, so every non-negative number ranks above every negative one.
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The logit a key of [`rank_key`] came from (NaN for [`NAN_KEY`] and [`ABSENT`]).
#[inline(always)]
pub const fn key_logit(key: u32) -> f32 {
    if key <= NAN_KEY {
        f32::NAN
    } else if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7FFF_FFFF)
    } else {
        f32::from_bits(!key)
    }
}

// -inf, the lowest number, still ranks above NaN.
const _: () = assert!(rank_key(f32::NEG_INFINITY) > NAN_KEY);
