//! The input format of the stateful targets: a sequence of records, each `tag: u8`,
//! `len: u16` (big-endian) and `len` bytes of body. A target maps the tag (modulo its number of
//! actions) to an action and reads the action's fields from the body with [`Reader`]; a body that
//! runs short reads as zeros. Unlike `arbitrary`'s encoding, this one is easy to write by hand,
//! so the checked-in seeds (see `examples/seeds.rs`) carry real encoded packets the fuzzer can
//! mutate field by field.

/// Reads fields off the front of a byte string; past its end every field reads as zero.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> u16 {
        let mut b = [0; 2];
        let got = self.bytes(2);
        b[..got.len()].copy_from_slice(got);
        u16::from_be_bytes(b)
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let got = self.bytes(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_be_bytes(b)
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        let got = self.bytes(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_be_bytes(b)
    }

    /// A byte string with a one-byte length prefix.
    pub fn short_bytes(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }

    /// The next record: its tag and a reader over its body.
    pub fn record(&mut self) -> Option<(u8, Reader<'a>)> {
        if self.data.is_empty() {
            return None;
        }
        let tag = self.u8();
        let len = self.u16() as usize;
        Some((tag, Reader::new(self.bytes(len))))
    }
}

/// The tag of `item` in a target's table of actions (for seed generators).
pub fn tag_of<T: PartialEq + std::fmt::Debug>(table: &[T], item: T) -> u8 {
    let at = table.iter().position(|t| *t == item);
    u8::try_from(at.unwrap_or_else(|| panic!("{item:?} is not in the table"))).expect("small table")
}

/// Appends one record (the inverse of [`Reader::record`]), for seed generators.
pub fn push_record(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let len = u16::try_from(body.len()).expect("seed records are small");
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_short_bodies_read_as_zero() {
        let mut data = Vec::new();
        push_record(&mut data, 7, &[1, 2, 3]);
        push_record(&mut data, 9, &[]);
        data.extend_from_slice(&[4, 0, 9, 0xaa]); // a record cut short
        let mut r = Reader::new(&data);
        let (tag, mut body) = r.record().unwrap();
        assert_eq!((tag, body.u16(), body.u8(), body.u8()), (7, 0x0102, 3, 0));
        let (tag, body) = r.record().unwrap();
        assert!(tag == 9 && body.is_empty());
        let (tag, mut body) = r.record().unwrap();
        assert_eq!((tag, body.rest()), (4, &[0xaa][..]));
        assert!(r.record().is_none());
    }
}
