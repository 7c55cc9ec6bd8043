//! A small byte format for structured fuzz inputs, read by [`Reader`] and
//! written by [`Writer`], so that seeds can be written as values and encoded
//! rather than found by chance.
//!
//! Every read succeeds: past the end of the input it reads zeros, so any
//! bytes are some input and the fuzzer never wastes an input on a parse
//! error. Integers are drawn *within* a range, except for a few tags that
//! give its edges and the values just outside it, so that mutations reach
//! both the common case and the limits. Few tags leave the range (about one
//! in sixty), so that random bytes still mostly make valid rules, whose
//! twenty-odd fields must all be in range.

/// Tags of [`Reader::int`] at or above this value are edge cases.
const EDGE_TAGS_FROM: u8 = 248;
/// The tag [`Writer::int`] uses: the next eight bytes are the value itself.
const RAW_INT_TAG: u8 = 250;
/// Tags of [`Reader::text`] below this pick from the pool.
const POOL_TAGS_BELOW: u8 = 248;
/// The tag [`Writer::text`] uses: a two-byte length, then the bytes.
const RAW_TEXT_TAG: u8 = 250;
/// The longest raw text: past every text limit of the domain, and short
/// enough that a length read past the input's end costs little.
pub const RAW_TEXT_BYTES_MAX: usize = 1_024;

/// Reads values from fuzz input; zeros once the input is used up.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    /// Eight bytes, little-endian.
    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    /// A flag.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A count in `0..=max`.
    pub fn count(&mut self, max: u8) -> usize {
        usize::from(self.byte() % max.saturating_add(1))
    }

    /// An integer, mostly in `min..=max`; a few tags give the edges, the
    /// values just outside, the extremes of i64, or a raw value.
    pub fn int(&mut self, min: i64, max: i64) -> i64 {
        let tag = self.byte();
        if tag < EDGE_TAGS_FROM {
            let span = i128::from(max) - i128::from(min) + 1;
            if span <= 0 {
                return min;
            }
            let offset = i128::from(self.u64()) % span;
            // In min..=max, so it fits.
            return i64::try_from(i128::from(min) + offset).unwrap_or(min);
        }
        match tag {
            248 => min,
            249 => max,
            RAW_INT_TAG => self.u64() as i64,
            251 => min.saturating_add(1).min(max),
            252 => max.saturating_sub(1).max(min),
            253 => min.saturating_sub(1),
            254 => max.saturating_add(1),
            _ => i64::MAX,
        }
    }

    /// A text: mostly one of `pool` (which must not be empty); a few tags
    /// give the empty text, one byte too long for `max_bytes`, a control
    /// character, or raw bytes.
    pub fn text(&mut self, pool: &[&str], max_bytes: usize) -> String {
        let tag = self.byte();
        let pooled = |tag: u8| {
            let index = usize::from(tag) % pool.len().max(1);
            pool.get(index).copied().unwrap_or_default().to_owned()
        };
        if tag < POOL_TAGS_BELOW {
            return pooled(tag);
        }
        match tag {
            248 => String::new(),
            249 => "x".repeat(max_bytes.saturating_add(1)),
            RAW_TEXT_TAG => {
                let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()]))
                    .min(RAW_TEXT_BYTES_MAX);
                let bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            251 => "bad\nline".to_owned(),
            other => pooled(other),
        }
    }
}

/// Writes values that a [`Reader`] reads back exactly, call for call.
#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty input.
    pub fn new() -> Self {
        Writer::default()
    }

    /// The input written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// One byte.
    pub fn byte(&mut self, byte: u8) {
        self.bytes.push(byte);
    }

    /// A flag.
    pub fn flag(&mut self, flag: bool) {
        self.byte(u8::from(flag));
    }

    /// A count (at most the `max` the reader is given).
    pub fn count(&mut self, count: usize) {
        self.byte(u8::try_from(count).unwrap_or(u8::MAX));
    }

    /// Any integer, whatever range the reader is given.
    pub fn int(&mut self, value: i64) {
        self.byte(RAW_INT_TAG);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// Any text of up to [`RAW_TEXT_BYTES_MAX`] bytes, whatever pool the
    /// reader is given; longer texts are cut.
    pub fn text(&mut self, text: &str) {
        self.byte(RAW_TEXT_TAG);
        let bytes = text.as_bytes();
        let len = bytes.len().min(RAW_TEXT_BYTES_MAX);
        let len_bytes = u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes();
        self.bytes.extend_from_slice(&len_bytes);
        self.bytes
            .extend_from_slice(bytes.get(..len).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back() {
        let mut writer = Writer::new();
        writer.int(i64::MIN);
        writer.int(42);
        writer.text("order-1");
        writer.text("");
        writer.flag(true);
        writer.count(3);
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.int(0, 10), i64::MIN);
        assert_eq!(reader.int(0, 10), 42);
        assert_eq!(reader.text(&["a"], 8), "order-1");
        assert_eq!(reader.text(&["a"], 8), "");
        assert!(reader.flag());
        assert_eq!(reader.count(3), 3);
        assert!(reader.is_empty());
        assert_eq!(
            reader.int(5, 9),
            5,
            "zeros past the end: the range's first value"
        );
    }

    #[test]
    fn ints_stay_in_range_except_for_edge_tags() {
        for tag in 0..EDGE_TAGS_FROM {
            for fill in [0u8, 7, 255] {
                let mut bytes = vec![tag];
                bytes.extend([fill; 8]);
                let value = Reader::new(&bytes).int(-3, 1_000);
                assert!(
                    (-3..=1_000).contains(&value),
                    "tag {tag} fill {fill}: {value}"
                );
            }
        }
        assert_eq!(Reader::new(&[254]).int(0, i64::MAX), i64::MAX);
        assert_eq!(Reader::new(&[253]).int(1, 9), 0);
        assert_eq!(
            Reader::new(&[1, 255, 255, 255, 255, 255, 255, 255, 255]).int(i64::MIN, i64::MAX),
            i64::MAX
        );
    }
}
