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
