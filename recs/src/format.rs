//! What the stored model formats share: a magic, a format version and little-endian fields.

use crate::ModelDecodeError;

/// Little-endian reads at byte offsets of a buffer whose length was checked.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl Fields<'_> {
    pub(crate) fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.0[o..o + 4].try_into().expect("4 bytes"))
    }

    pub(crate) fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.0[o..o + 8].try_into().expect("8 bytes"))
    }

    pub(crate) fn f32_at(&self, o: usize) -> f32 {
        f32::from_le_bytes(self.0[o..o + 4].try_into().expect("4 bytes"))
    }

    /// A size field, refused if it does not fit this platform's `usize`.
    pub(crate) fn size_at(&self, o: usize) -> Result<usize, ModelDecodeError> {
        usize::try_from(self.u64_at(o)).map_err(|_| ModelDecodeError::Invalid("size"))
    }
}

/// Checks the header every format starts with: at least `header_len` bytes, the 8-byte `magic`,
/// then `version` as a `u32`. A short buffer that starts like the magic is `Truncated`; one that
/// does not is `BadMagic`.
pub(crate) fn check_header<'a>(
    b: &'a [u8],
    magic: &[u8; 8],
    header_len: usize,
    version: u32,
) -> Result<Fields<'a>, ModelDecodeError> {
    if b.len() < header_len {
        if !magic.starts_with(&b[..b.len().min(magic.len())]) {
            return Err(ModelDecodeError::BadMagic);
        }
        return Err(ModelDecodeError::Truncated {
            expected: header_len,
            actual: b.len(),
        });
    }
    if &b[..8] != magic {
        return Err(ModelDecodeError::BadMagic);
    }
    let fields = Fields(b);
    let found = fields.u32_at(8);
    if found != version {
        return Err(ModelDecodeError::UnsupportedVersion(found));
    }
    Ok(fields)
}

/// Checks that the buffer is exactly `expected` bytes: shorter is `Truncated`, longer is
/// `TrailingBytes`.
pub(crate) fn check_len(b: &[u8], expected: usize) -> Result<(), ModelDecodeError> {
    if b.len() < expected {
        return Err(ModelDecodeError::Truncated {
            expected,
            actual: b.len(),
        });
    }
    if b.len() > expected {
        return Err(ModelDecodeError::TrailingBytes {
            expected,
            actual: b.len(),
        });
    }
    Ok(())
}
