//! A minimal protobuf wire-format reader (varint, 64-bit, length-delimited,
//! 32-bit fields): enough for dnstap, with no code generation. Bounded by its
//! input: every length is checked against the bytes left; unknown fields and
//! wire types 0, 1, 2, 5 are skipped, groups (3, 4) are an error.

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The input ended inside a field.
    Truncated,
    /// A varint longer than 10 bytes.
    BadVarint,
    /// Wire type 3, 4, 6 or 7 (groups are deprecated; dnstap has none).
    BadWireType(u8),
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The field as an unsigned integer (varint or fixed), if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Varint(v) | Value::Fixed64(v) => Some(v),
            Value::Fixed32(v) => Some(v as u64),
            Value::Bytes(_) => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Iterates over the fields of one message: `(field number, value)`.
pub struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

pub fn fields(msg: &[u8]) -> Fields<'_> {
    Fields {
        rest: msg,
        failed: false,
    }
}

fn varint(b: &mut &[u8]) -> Result<u64, WireError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some((&byte, rest)) = b.split_first() else {
            return Err(WireError::Truncated);
        };
        *b = rest;
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::BadVarint)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if b.len() < n {
        return Err(WireError::Truncated);
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = varint(&mut self.rest)?;
        let number = (key >> 3) as u32;
        let value = match (key & 7) as u8 {
            0 => Value::Varint(varint(&mut self.rest)?),
            1 => Value::Fixed64(u64::from_le_bytes(
                take(&mut self.rest, 8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = varint(&mut self.rest)?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Value::Bytes(take(&mut self.rest, len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                take(&mut self.rest, 4)?.try_into().expect("4 bytes"),
            )),
            t => return Err(WireError::BadWireType(t)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Writers, for tests and the fuzz corpus: a varint, and a field of each kind.
pub mod write {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
        varint(out, (field as u64) << 3);
        varint(out, v);
    }
    pub fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
        varint(out, ((field as u64) << 3) | 5);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        varint(out, ((field as u64) << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type_and_stops_on_truncation() {
        let mut m = Vec::new();
        write::uint(&mut m, 1, 300);
        write::bytes(&mut m, 2, b"abc");
        write::fixed32(&mut m, 3, 7);
        let got: Vec<_> = fields(&m).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            vec![
                (1, Value::Varint(300)),
                (2, Value::Bytes(b"abc")),
                (3, Value::Fixed32(7))
            ]
        );
        let cut = &m[..m.len() - 1];
        assert_eq!(
            fields(cut).last().unwrap().unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            fields(&[0x0b]).next().unwrap().unwrap_err(),
            WireError::BadWireType(3)
        );
    }
}
