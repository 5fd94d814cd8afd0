//! The byte layout in which the wasm side hands steps and results to JS
//! (read back by `js/wire.js`). Building JS objects field by field from
//! wasm costs an import call per field and kilobytes of glue per shape; one
//! byte buffer per step, read with a `DataView`, costs neither.
//!
//! Little-endian: `u8`, `u32`, `f64`; a string is a `u32` byte length and
//! UTF-8; bytes are a `u32` length and the bytes.

/// A buffer being written.
#[derive(Default)]
pub struct Wire(Vec<u8>);

impl Wire {
    pub fn new() -> Self {
        Wire(Vec::new())
    }

    // Inlined: two of these per key of a read's results.
    #[inline(always)]
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    #[inline(always)]
    pub fn u32(&mut self, v: usize) -> &mut Self {
        // Lengths and counts of one wasm32 memory always fit.
        self.0.extend_from_slice(&(v as u32).to_le_bytes());
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len());
        self.0.extend_from_slice(v);
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    pub fn strs(&mut self, v: &[String]) -> &mut Self {
        self.u32(v.len());
        for s in v {
            self.str(s);
        }
        self
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    /// Empties the buffer but for room for its length (`seal`).
    pub fn reset(&mut self) {
        self.0.clear();
        self.u32(0);
    }

    /// Writes the length after `reset` in front: JS reads the bytes in
    /// wasm memory, at the address of [`Wire::as_ptr`].
    pub fn seal(&mut self) {
        let len = self.0.len().saturating_sub(4) as u32;
        if let Some(head) = self.0.get_mut(..4) {
            head.copy_from_slice(&len.to_le_bytes());
        }
    }

    pub fn as_ptr(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_little_endian_and_length_prefixed() {
        let mut w = Wire::new();
        w.u8(7).u32(258).f64(1.5).str("é").bytes(&[9]);
        let mut expected = vec![7, 2, 1, 0, 0];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, 0xc3, 0xa9, 1, 0, 0, 0, 9]);
        assert_eq!(w.into_inner(), expected);
    }
}
