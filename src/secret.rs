//! Secrets (passwords, keys) that must never reach a log line or a `Debug` print.

use std::fmt;
use std::path::Path;

/// A secret value. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Most bytes of a secret file.
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Reads a file a config names, refusing before any read what is not a regular file (reading a
/// FIFO waits for a writer forever, `/dev/zero` never ends) or is larger than `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a directory, FIFO or device); give the path of a file",
            path.display()
        ));
    }
    if meta.len() > max {
        return Err(format!(
            "{} is {} bytes, more than the {max} read from such a file",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "{} grew past {max} bytes while read",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Reads a secret from a file, as `*-file` config keys do. One trailing newline is dropped
/// (editors add one); an empty file is an error, because an empty password is never meant.
/// Errors name the file; the caller names the key (`[mqtt] command-key-file: ...`).
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let bytes = read_bounded(path, SECRET_FILE_MAX)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("secret file {} is not UTF-8 text", path.display()))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(format!("secret file {} is empty", path.display()));
    }
    Ok(Secret(value.to_string()))
}

/// Resolves a secret that a config may give inline (`password = "..."`) or, preferably, in a
/// file (`password-file = "/etc/hotspot-edge/router.pass"`). Returns the secret and, for an
/// inline value, a warning for `check-config`. Both at once is an error: which one was meant?
pub fn resolve(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<(Option<Secret>, Option<String>), String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("give {key} or {key}-file, not both")),
        (None, Some(path)) => read_secret_file(path)
            .map(|s| (Some(s), None))
            .map_err(|e| format!("{key}-file: {e}")),
        (Some(s), None) => Ok((
            Some(s.clone()),
            Some(format!(
                "{key} is written inline; put it in a file readable only by the daemon and use {key}-file"
            )),
        )),
        (None, None) => Ok((None, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_debug_and_display() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn resolve_prefers_files_and_warns_about_inline_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "from-file\n").unwrap();
        let inline = Secret::new("inline-value");
        let (s, w) = resolve("password", None, Some(&p)).unwrap();
        assert_eq!(s.unwrap().expose(), "from-file");
        assert!(w.is_none());
        let (s, w) = resolve("password", Some(&inline), None).unwrap();
        assert_eq!(s.unwrap().expose(), "inline-value");
        let w = w.unwrap();
        assert!(
            w.contains("password-file") && !w.contains("inline-value"),
            "{w}"
        );
        assert!(resolve("password", Some(&inline), Some(&p))
            .unwrap_err()
            .contains("not both"));
        assert_eq!(resolve("password", None, None).unwrap().0, None);
    }

    #[test]
    fn secret_file_drops_one_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "abc");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_secret_file(&p).unwrap_err().contains("empty"));
        assert!(read_secret_file(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }
}
