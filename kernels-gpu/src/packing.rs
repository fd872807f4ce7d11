//! The bit layout of packed e2m1 codes in device memory, and the scale arithmetic that turns
//! them into exact bf16 operands in few instructions.
//!
//! # Codes
//! Host buffers hold codes in the natural order: byte `j` of a 4-byte word holds K-elements
//! `2j` (low nibble) and `2j + 1`, and a 16-byte chunk (four words) one row's 32 K-elements.
//! On the device every chunk is *lane-ready*: its word `j` holds K-element pair `j` of each of
//! the four natural words, so pair `p` of device word `j` is K-elements `8p + 2j` and
//! `8p + 2j + 1` of the chunk ([`chunk_pair_k`]). That is the K order of a tensor-core weight
//! fragment (`mma` m16n8k16 and `wgmma` alike): lane `t` of a quad takes word `t` and finds the
//! K-elements `2t` and `2t + 8` of the chunk's first 16 in pairs 0 and 1, those of its second
//! 16 in pairs 2 and 3, each on fixed bits, so no lane selects pairs at run time.
//!
//! Inside a word a pair is cheap to decode when its two codes already sit on the bits of the
//! *template* [`PAIR_TEMPLATE`]: code bits `m e0 e1` on bf16 bits 6..8 and the sign on bit 15,
//! for the low half, and the same 16 bits higher for the high half. That bf16 is the e2m1
//! value times 2^-126 (the e = 0 code 0.5 lands on a subnormal, as it must). [`pack_word`]
//! moves the 32 bits of a word so that pair `p` comes out of a rotation and a mask
//! ([`PAIR_SOURCES`]); pairs 0-2 need one rotation each, pair 3 two (no four rotations of the
//! template tile 32 bits). [`pack_chunk`] does both steps for a chunk and [`unpack_chunk`]
//! inverts them.
//!
//! # Chunks
//! The codes of a group (`n` weight rows of `k / 2` bytes) are stored as 16-byte chunks (one
//! row's 32 K-elements, i.e. one packed word per 8 codes) in *strip order*: rows in strips of
//! [`STRIP_ROWS`], each strip's bytes contiguous, and within a strip blocks of [`BLOCK_K`]
//! K-elements, each block holding its 16 rows' chunks in the order the swap-AB kernel's lanes
//! read them (lane `4g + t` of an 8-row half: row `g`, chunk `t`). A stage of any tile then
//! reads runs of `16 · BK / 2` bytes or more instead of one 16-64-byte piece per row, which
//! the DRAM serves far better (`docs/perf-notes.md`, v6). [`code_chunk_offset`] is the one
//! formula; [`order_chunks`] applies it on upload and inverts it on download.
//!
//! # Scales
//! The kernels multiply the template value by `scale · 2^(126 - ACCUMULATOR_SHIFT)` in one
//! bf16x2 multiply, so the MMA operand is `value · scale · 2^-ACCUMULATOR_SHIFT`, exact (at
//! most 6 significant bits, well inside bf16's normal range), and the epilogue multiplies
//! the f32 accumulators by `2^ACCUMULATOR_SHIFT`. An e8m0 code `E` turns into that factor by
//! one integer multiply, which overflows bf16 above [`MX_SCALE_CODE_MAX`]: the host refuses
//! such codes (see `stagefit::Error::Scale`). Below scale 2^-93 the operands become bf16
//! subnormals, and a product `a · w` below 2^-94 in magnitude (an f32 subnormal once
//! shifted) may be flushed to zero by the tensor cores: absolute errors far below any bf16
//! output's rounding.

/// Bits of one bf16x2 that hold two e2m1 codes as "value · 2^-126": mantissa, exponent and
/// sign bits of both halves.
pub const PAIR_TEMPLATE: u32 = 0x81C0_81C0;

/// The template bits that code bits 0 (m), 1 (e0), 2 (e1) and 3 (sign) of a low-half code
/// land on; a high-half code lands 16 bits higher.
pub const CODE_BIT_TO_TEMPLATE_BIT: [u32; 4] = [6, 7, 8, 15];

/// How pair `p` is read from a packed word: `(word.rotate_left(r) & mask)` OR-ed over the
/// two `(r, mask)` entries, whose masks split [`PAIR_TEMPLATE`].
pub const PAIR_SOURCES: [[(u32, u32); 2]; 4] = [
    [(0, PAIR_TEMPLATE), (0, 0)],
    [(4, PAIR_TEMPLATE), (4, 0)],
    [(10, PAIR_TEMPLATE), (10, 0)],
    [(6, 0x0040_0040), (14, PAIR_TEMPLATE & !0x0040_0040)],
];

/// Pair `pair` (K-elements `2·pair`, `2·pair + 1`) of a packed word, on the template's bits.
#[inline(always)]
pub const fn template_pair(word: u32, pair: usize) -> u32 {
    let [(r0, m0), (r1, m1)] = PAIR_SOURCES[pair];
    (word.rotate_left(r0) & m0) | (word.rotate_left(r1) & m1)
}

/// The rotation that brings template bit `bit` of pair `pair` into place.
const fn rotation(pair: usize, bit: u32) -> u32 {
    let [(r0, m0), (r1, _)] = PAIR_SOURCES[pair];
    if m0 & (1 << bit) != 0 {
        r0
    } else {
        r1
    }
}

/// `PACKED_BIT[b]`: where bit `b` of a natural word goes in the packed word.
const PACKED_BIT: [u32; 32] = {
    let mut table = [0u32; 32];
    let mut b = 0;
    while b < 32 {
        let (element, code_bit) = (b / 4, b % 4);
        let (pair, half) = (element / 2, element % 2);
        let template_bit = CODE_BIT_TO_TEMPLATE_BIT[code_bit] + 16 * half as u32;
        table[b] = (template_bit + 32 - rotation(pair, template_bit)) % 32;
        b += 1;
    }
    table
};

// The packing is a bit permutation: every packed bit has exactly one source.
const _: () = {
    let mut seen = 0u32;
    let mut b = 0;
    while b < 32 {
        assert!(seen & (1 << PACKED_BIT[b]) == 0, "two natural bits share a packed bit");
        seen |= 1 << PACKED_BIT[b];
        b += 1;
    }
};

/// A word's 8 codes (element `i` in bits `4i..4i+4`) moved onto the template's bits, pair `p`
/// (elements `2p`, `2p + 1`) where [`template_pair`] reads it.
pub const fn pack_word(natural: u32) -> u32 {
    let mut packed = 0;
    let mut b = 0;
    while b < 32 {
        packed |= ((natural >> b) & 1) << PACKED_BIT[b];
        b += 1;
    }
    packed
}

/// The word of a packed one (the inverse of [`pack_word`]).
pub const fn unpack_word(packed: u32) -> u32 {
    let mut natural = 0;
    let mut b = 0;
    while b < 32 {
        natural |= ((packed >> PACKED_BIT[b]) & 1) << b;
        b += 1;
    }
    natural
}

/// The K-element, inside its 32-element chunk, of the low code of pair `pair` of device word
/// `word` (see the module docs; the high code is the next K-element).
pub const fn chunk_pair_k(word: usize, pair: usize) -> usize {
    8 * pair + 2 * word
}

/// The 4 × 4 transpose of a chunk's bytes: byte `j` of word `w` becomes byte `w` of word `j`
/// (its own inverse).
const fn transpose_bytes(words: [u32; 4]) -> [u32; 4] {
    let mut out = [0u32; 4];
    let mut j = 0;
    while j < 4 {
        let mut w = 0;
        while w < 4 {
            out[j] |= ((words[w] >> (8 * j)) & 0xFF) << (8 * w);
            w += 1;
        }
        j += 1;
    }
    out
}

/// A natural chunk (four words, 32 K-elements of one row) in the device layout: pair `j` of
/// each natural word gathered into word `j` ([`chunk_pair_k`]), each word then [`pack_word`]ed.
pub const fn pack_chunk(natural: [u32; 4]) -> [u32; 4] {
    let [a, b, c, d] = transpose_bytes(natural);
    [pack_word(a), pack_word(b), pack_word(c), pack_word(d)]
}

/// The natural chunk of a device one (the inverse of [`pack_chunk`]).
pub const fn unpack_chunk(packed: [u32; 4]) -> [u32; 4] {
    let [a, b, c, d] = packed;
    transpose_bytes([unpack_word(a), unpack_word(b), unpack_word(c), unpack_word(d)])
}

/// Packs natural codes in place, chunk by chunk ([`pack_chunk`]; `codes.len()` must be a
/// multiple of 16, as every row of `K / 2` bytes is for `K % 32 == 0`).
pub fn pack_codes(codes: &mut [u8]) {
    map_chunks(codes, pack_chunk);
}

/// Unpacks packed codes in place (the inverse of [`pack_codes`]).
pub fn unpack_codes(codes: &mut [u8]) {
    map_chunks(codes, unpack_chunk);
}

fn map_chunks(codes: &mut [u8], f: fn([u32; 4]) -> [u32; 4]) {
    for chunk in codes.chunks_exact_mut(CODE_CHUNK_BYTES) {
        let word = |i: usize| u32::from_le_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        let mapped = f([word(0), word(1), word(2), word(3)]);
        for (bytes, word) in chunk.chunks_exact_mut(4).zip(mapped) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
    }
}

/// Weight rows per strip of the device chunk order (one swap-AB MMA tile of rows).
pub const STRIP_ROWS: usize = 16;
/// K-elements per block of a strip (one warp's share of a swap-AB stage).
pub const BLOCK_K: usize = 128;
/// Bytes of one 16-byte chunk of codes (32 K-elements).
const CODE_CHUNK_BYTES: usize = 16;
/// Chunks per row of a full block.
const CHUNKS_PER_BLOCK: usize = BLOCK_K / 32;

/// Bytes of one strip of [`STRIP_ROWS`] rows of `k` K-elements.
#[inline(always)]
pub const fn strip_bytes(k: usize) -> usize {
    STRIP_ROWS * (k / 2)
}

/// The largest K the device order holds: a strip is then at most `8 · 2^28 = 2^31` bytes, so
/// every offset inside one fits 32 bits and the kernels compute them in 32-bit arithmetic
/// (64-bit index arithmetic was half the instructions of a swap-AB stage, `docs/perf-notes.md`
/// v12). The host refuses larger K before any packing or launch.
pub const MAX_K: usize = 1 << 28;

/// Byte offset, inside its strip, of chunk `t` (K-elements `128·block + 32·t..+32`) of block
/// `block` of the strip's row `row_in_strip`, for `k <= MAX_K` (see [`code_chunk_offset`]).
/// Chunks past the row's end get an offset too (the kernels zero-fill them without reading).
#[inline(always)]
pub const fn strip_block_offset(k: u32, row_in_strip: u32, block: u32, t: u32) -> u32 {
    let per_block = CHUNKS_PER_BLOCK as u32;
    let rest = (k / 32).saturating_sub(block * per_block);
    let width = if rest < per_block { rest } else { per_block };
    let block_bytes = (STRIP_ROWS * CHUNKS_PER_BLOCK * CODE_CHUNK_BYTES) as u32;
    block * block_bytes + (row_in_strip * width + t) * CODE_CHUNK_BYTES as u32
}

/// [`strip_block_offset`] of the chunk holding K-elements `32·chunk..32·chunk + 32`.
#[inline(always)]
pub const fn strip_chunk_offset(k: usize, row_in_strip: usize, chunk: usize) -> usize {
    let (block, t) = (chunk / CHUNKS_PER_BLOCK, chunk % CHUNKS_PER_BLOCK);
    strip_block_offset(k as u32, row_in_strip as u32, block as u32, t as u32) as usize
}

/// Byte offset, among the codes of one group of rows with `k` K-elements (a multiple of 32, at
/// most [`MAX_K`]; the rows a multiple of [`STRIP_ROWS`]), of the 16-byte chunk holding row `row`'s
/// K-elements `32·chunk..32·chunk + 32` (see the module docs). Inside a block of `w` chunks
/// per row (4, or fewer in a strip's last block when `k` is not a multiple of [`BLOCK_K`]),
/// row `8·half + g` of the strip has its chunk `t` at `((8·half + g)·w + t)·16`: for full
/// blocks lane `4g + t` of half `half` reads 512 contiguous bytes with its warp.
#[inline(always)]
pub const fn code_chunk_offset(k: usize, row: usize, chunk: usize) -> usize {
    (row / STRIP_ROWS) * strip_bytes(k) + strip_chunk_offset(k, row % STRIP_ROWS, chunk)
}

/// Copies `src` to `dst` (of equal length) moving the 16-byte chunks of its `rows`-row groups
/// of `k`-element codes between the natural row-major order and the device's strip order
/// ([`code_chunk_offset`]): `to_device` true reorders natural codes for upload, false restores
/// them. The lengths must be a multiple of `rows · k / 2`, `rows` of [`STRIP_ROWS`] and `k` of 32,
/// and `k` at most [`MAX_K`]. (Host only: the kernels read the order, they never make it.)
#[cfg(not(target_arch = "nvptx64"))]
pub fn order_chunks(src: &[u8], dst: &mut [u8], rows: usize, k: usize, to_device: bool) {
    debug_assert!(k <= MAX_K, "K = {k} is above MAX_K");
    let group_bytes = rows * k / 2;
    for (src, dst) in src.chunks_exact(group_bytes).zip(dst.chunks_exact_mut(group_bytes)) {
        for row in 0..rows {
            for chunk in 0..k / 32 {
                let natural = row * (k / 2) + chunk * CODE_CHUNK_BYTES;
                let device = code_chunk_offset(k, row, chunk);
                let (from, to) = if to_device { (natural, device) } else { (device, natural) };
                dst[to..to + CODE_CHUNK_BYTES].copy_from_slice(&src[from..from + CODE_CHUNK_BYTES]);
            }
        }
    }
}

/// The kernels accumulate `A · W · 2^-ACCUMULATOR_SHIFT` and scale by `2^ACCUMULATOR_SHIFT`
/// in the epilogue (see the module docs).
pub const ACCUMULATOR_SHIFT: i32 = 32;

/// The exponent of the factor each block scale is turned into: `scale · 2^SCALE_FACTOR_EXP`.
pub const SCALE_FACTOR_EXP: i32 = 126 - ACCUMULATOR_SHIFT;

/// Largest e8m0 scale code the kernels take: its factor's bf16 exponent field is 254.
pub const MX_SCALE_CODE_MAX: u8 = (254 - SCALE_FACTOR_EXP) as u8;

/// The half-way exponent of the NVFP4 factor: `(byte << 4)` of a non-negative e4m3 byte, read
/// as bf16, is its value times 2^-120 (normals and subnormals alike); two bf16 multiplies by
/// `2^E4M3_STEP` make it `scale · 2^SCALE_FACTOR_EXP`.
pub const E4M3_STEP: i32 = (SCALE_FACTOR_EXP + 120) / 2;
const _: () = assert!(2 * E4M3_STEP == SCALE_FACTOR_EXP + 120 && E4M3_STEP <= 127);

/// The bf16 bits of an e4m3 block scale's value times 2^-120 (the NVFP4 factor before its two
/// multiplies by `2^E4M3_STEP`).
pub const fn e4m3_scaled_down_bits(byte: u32) -> u32 {
    byte << 4
}

/// The bf16 bits of an e8m0 block scale's factor `scale · 2^SCALE_FACTOR_EXP`: the exponent
/// field `code - 127 + SCALE_FACTOR_EXP + 127` (codes up to [`MX_SCALE_CODE_MAX`]).
pub const fn e8m0_factor_bits(byte: u32) -> u32 {
    (byte + SCALE_FACTOR_EXP as u32) << 7
}

/// The bf16 bits of `2^exp` (`-126 <= exp <= 127`).
pub const fn bf16_pow2(exp: i32) -> u32 {
    ((exp + 127) as u32) << 7
}

/// The f32 value `2^exp` (`-126 <= exp <= 127`).
pub const fn f32_pow2(exp: i32) -> f32 {
    f32::from_bits(((exp + 127) as u32) << 23)
}
