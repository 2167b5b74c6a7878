//! The RouterOS API wire format, sans I/O: a *word* is a length prefix and bytes, a *sentence*
//! is words ended by an empty word. Used by the simulator (the client side is mikrotik-rs).
//!
//! Length prefix: < 0x80 one byte; < 0x4000 two bytes OR 0x8000; < 0x200000 three bytes OR
//! 0xC00000; < 0x10000000 four bytes OR 0xE0000000; else 0xF0 and four bytes. A first byte of
//! 0xF8 or more is a reserved control byte.

/// Longest word accepted (protects memory against a hostile or broken peer).
pub const MAX_WORD: usize = 1 << 20;
/// Most words in one sentence.
pub const MAX_WORDS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("reserved length byte 0x{0:02x}")]
    Reserved(u8),
    #[error("word of {0} bytes is longer than the {MAX_WORD} allowed")]
    TooLong(usize),
    #[error("sentence has more than {MAX_WORDS} words")]
    TooManyWords,
}

pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    let l = len as u32;
    if len < 0x80 {
        out.push(l as u8);
    } else if len < 0x4000 {
        out.extend_from_slice(&((l | 0x8000) as u16).to_be_bytes());
    } else if len < 0x20_0000 {
        let v = l | 0xC0_0000;
        out.extend_from_slice(&v.to_be_bytes()[1..]);
    } else if len < 0x1000_0000 {
        out.extend_from_slice(&(l | 0xE000_0000).to_be_bytes());
    } else {
        out.push(0xF0);
        out.extend_from_slice(&l.to_be_bytes());
    }
}

pub fn encode_word(word: &[u8], out: &mut Vec<u8>) {
    encode_len(word.len(), out);
    out.extend_from_slice(word);
}

/// Encodes words plus the terminating empty word.
pub fn encode_sentence<W: AsRef<[u8]>>(words: &[W]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in words {
        encode_word(w.as_ref(), &mut out);
    }
    out.push(0);
    out
}

/// Reads a length prefix: `Ok(None)` when more bytes are needed, else (length, prefix size).
fn decode_len(buf: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    let Some(&b) = buf.first() else {
        return Ok(None);
    };
    let (size, mask): (usize, u32) = match b {
        0x00..=0x7F => (1, 0x7F),
        0x80..=0xBF => (2, 0x3FFF),
        0xC0..=0xDF => (3, 0x1F_FFFF),
        0xE0..=0xEF => (4, 0x0FFF_FFFF),
        0xF0 => (5, u32::MAX),
        other => return Err(WireError::Reserved(other)),
    };
    if buf.len() < size {
        return Ok(None);
    }
    let mut v: u32 = 0;
    let start = if size == 5 { 1 } else { 0 };
    for &byte in &buf[start..size] {
        v = (v << 8) | u32::from(byte);
    }
    Ok(Some(((v & mask) as usize, size)))
}

/// A decoded sentence's words and how many bytes of the buffer they used.
pub type Decoded = (Vec<Vec<u8>>, usize);

/// Decodes one sentence from the front of `buf`: `Ok(None)` when it is not complete yet,
/// else the words and how many bytes they used. Empty sentences (a lone 0) come back as an
/// empty list; callers ignore them.
pub fn decode_sentence(buf: &[u8]) -> Result<Option<Decoded>, WireError> {
    let mut pos = 0;
    let mut words = Vec::new();
    loop {
        let Some((len, size)) = decode_len(&buf[pos..])? else {
            return Ok(None);
        };
        if len > MAX_WORD {
            return Err(WireError::TooLong(len));
        }
        pos += size;
        if len == 0 {
            return Ok(Some((words, pos)));
        }
        if buf.len() < pos + len {
            return Ok(None);
        }
        if words.len() >= MAX_WORDS {
            return Err(WireError::TooManyWords);
        }
        words.push(buf[pos..pos + len].to_vec());
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_every_prefix_form() {
        for (len, prefix) in [
            (0usize, vec![0x00]),
            (0x7F, vec![0x7F]),
            (0x80, vec![0x80, 0x80]),
            (0x3FFF, vec![0xBF, 0xFF]),
            (0x4000, vec![0xC0, 0x40, 0x00]),
            (0x1F_FFFF, vec![0xDF, 0xFF, 0xFF]),
            (0x20_0000, vec![0xE0, 0x20, 0x00, 0x00]),
            (0x1000_0000, vec![0xF0, 0x10, 0x00, 0x00, 0x00]),
        ] {
            let mut out = Vec::new();
            encode_len(len, &mut out);
            assert_eq!(out, prefix, "length {len:#x}");
            assert_eq!(decode_len(&out).unwrap(), Some((len, out.len())));
        }
        assert_eq!(decode_len(&[0xF8]), Err(WireError::Reserved(0xF8)));
    }

    #[test]
    fn sentences_round_trip_and_wait_for_more_bytes() {
        let long = vec![b'x'; 300];
        let s = encode_sentence(&[b"/login".to_vec(), b"=name=admin".to_vec(), long.clone()]);
        for cut in 0..s.len() {
            assert_eq!(decode_sentence(&s[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (words, used) = decode_sentence(&s).unwrap().unwrap();
        assert_eq!(used, s.len());
        assert_eq!(
            words,
            vec![b"/login".to_vec(), b"=name=admin".to_vec(), long]
        );
        assert_eq!(decode_sentence(&[0]).unwrap(), Some((vec![], 1)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut buf = vec![0u8; (x % 40) as usize];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = decode_sentence(&buf);
        }
    }
}
