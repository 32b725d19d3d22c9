//! A client's counters for the open bin, allocated on its first event of
//! the bin and handed on whole at the close: an idle tracked client keeps
//! no counters at all (#12, memory per client).
//!
//! The distinct-name sketches of [`ClientBin`] are 512-byte bitmaps; most
//! clients of a flood of spoofed sources ask one or two names per bin. So the
//! first few bitmap positions are kept here, in a small array, and go into
//! the bitmap only when the array is full or at the close: the bitmap ends
//! up with exactly the bits it would have had (a position is a hash modulo
//! the bitmap's size, and setting a bit twice is setting it once), and the
//! estimates are the same.

use super::counters::{ClientBin, DISTINCT_BITS};

/// Bitmap positions kept before the bitmap is used.
const SPARSE: usize = 7;

/// Up to [`SPARSE`] distinct bitmap positions; `n == SPILLED` once they went
/// into the bitmap (every later one goes there directly).
#[derive(Debug, Default)]
struct Sparse {
    n: u8,
    pos: [u16; SPARSE],
}

const SPILLED: u8 = u8::MAX;

impl Sparse {
    /// Records the position of hash `h`; false when it must go to the bitmap
    /// (the array was full, or already spilled).
    fn insert(&mut self, h: u64) -> bool {
        if self.n == SPILLED {
            return false;
        }
        let p = (h % DISTINCT_BITS as u64) as u16;
        let n = usize::from(self.n);
        if self.pos[..n].contains(&p) {
            return true;
        }
        if n < SPARSE {
            self.pos[n] = p;
            self.n += 1;
            return true;
        }
        false
    }

    /// The positions kept so far, once: the array is spilled after this.
    fn spill(&mut self) -> impl Iterator<Item = u64> + use<> {
        let n = if self.n == SPILLED {
            0
        } else {
            usize::from(self.n)
        };
        self.n = SPILLED;
        let pos = self.pos;
        pos.into_iter().take(n).map(u64::from)
    }
}

/// The open bin of one client.
#[derive(Debug, Default)]
pub struct OpenBin {
    pub bin: Box<ClientBin>,
    names: Sparse,
    mx_names: Sparse,
}

impl OpenBin {
    pub fn see_name(&mut self, h: u64) {
        if !self.names.insert(h) {
            for p in self.names.spill() {
                self.bin.see_name(p);
            }
            self.bin.see_name(h);
        }
    }

    pub fn see_mx_name(&mut self, h: u64) {
        if !self.mx_names.insert(h) {
            for p in self.mx_names.spill() {
                self.bin.see_mx_name(p);
            }
            self.bin.see_mx_name(h);
        }
    }

    /// The bin's counters, with the distinct counts filled in and the
    /// sketches freed (at the close), or kept (`keep_sketches`: to publish them).
    pub fn close(mut self, keep_sketches: bool) -> Box<ClientBin> {
        for p in self.names.spill() {
            self.bin.see_name(p);
        }
        for p in self.mx_names.spill() {
            self.bin.see_mx_name(p);
        }
        self.bin.finalize();
        if !keep_sketches {
            self.bin.release_sketches();
        }
        self.bin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::names::fast_hash;

    /// The estimates are those of the plain bitmap, below, at and above the
    /// array's size, with repeats.
    #[test]
    fn the_small_array_gives_the_bitmaps_estimates() {
        for n in [0u64, 1, 2, 6, 7, 8, 9, 30, 1000] {
            let mut plain = ClientBin::default();
            let mut open = OpenBin::default();
            for i in 0..n {
                for _ in 0..2 {
                    let h = fast_hash(format!("host{i}.example.com").as_bytes());
                    plain.see_name(h);
                    open.see_name(h);
                    let m = fast_hash(format!("d{}.example", i % 5).as_bytes());
                    plain.see_mx_name(m);
                    open.see_mx_name(m);
                }
            }
            plain.finalize();
            let closed = open.close(false);
            assert_eq!(closed.dns, plain.dns, "{n} names");
        }
    }
}
