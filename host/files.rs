//! Reading files the library is given (checkpoints, tune caches).

use std::path::Path;

/// Opens `path` for reading if it is a regular file: anything else (a FIFO, which would block
/// the open, or a device, which never ends) is refused with a message naming the path.
pub(crate) fn open_regular_file(path: &Path) -> std::result::Result<std::fs::File, String> {
    let not_regular = || format!("{}: not a regular file", path.display());
    let metadata = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The path may have been replaced between the two looks: check what was opened.
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(not_regular()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reads `path` (a regular file of at most `limit` bytes) as UTF-8 text.
pub(crate) fn read_small_text(path: &Path, limit: u64) -> std::result::Result<String, String> {
    use std::io::Read;
    let file = open_regular_file(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > limit {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    Ok(text)
}
