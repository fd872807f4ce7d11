//! The tensors of a checkpoint: one safetensors file, or a directory's shards listed by
//! `model.safetensors.index.json`, each memory-mapped and its header read on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// The index file of a sharded checkpoint directory.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The one file of an unsharded checkpoint directory.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The largest index file read.
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// A refusal about `file` (the tensor `tensor`, or `<file>` for the file itself); a problem
/// that starts by naming the file (as `crate::files` words them) is not told the name twice.
pub(crate) fn checkpoint_error(file: &Path, tensor: &str, problem: impl Into<String>) -> Error {
    let file = file.display().to_string();
    let problem: String = problem.into();
    let problem = problem.strip_prefix(&format!("{file}: ")).map(str::to_string).unwrap_or(problem);
    Error::Checkpoint { file, tensor: tensor.to_string(), problem }
}

/// One tensor: where it is, and its bytes (little-endian, as stored).
pub(crate) struct Tensor<'a> {
    pub(crate) file: &'a Path,
    pub(crate) dtype: Dtype,
    pub(crate) shape: &'a [usize],
    pub(crate) data: &'a [u8],
}

/// One memory-mapped safetensors file with its header parsed.
struct TensorFile {
    map: memmap2::Mmap,
    /// Where tensor data starts (after the 8-byte length and the header).
    data_start: usize,
    metadata: Metadata,
}

impl TensorFile {
    /// Maps `path` (a regular file; a FIFO or a device is refused before it is read) and reads
    /// its header.
    fn open(path: &Path) -> Result<TensorFile> {
        let bad = |problem: String| checkpoint_error(path, "<file>", problem);
        let file = crate::files::open_regular_file(path).map_err(bad)?;
        // SAFETY: the map is read-only; a file changed underneath it while loading is outside
        // what this loader promises (as for any reader of a file being rewritten).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(e.to_string()))?;
        let (header, metadata) =
            SafeTensors::read_metadata(&map).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        Ok(TensorFile { data_start: 8 + header, metadata, map })
    }

    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.metadata.offset_keys().into_iter()
    }

    fn tensor<'a>(&'a self, path: &'a Path, name: &str) -> Option<Tensor<'a>> {
        let info = self.metadata.info(name)?;
        let (start, end) = info.data_offsets;
        // `read_metadata` checked that the offsets tile the data exactly.
        let data = &self.map[self.data_start + start..self.data_start + end];
        Some(Tensor { file: path, dtype: info.dtype, shape: &info.shape, data })
    }
}

/// One file of a checkpoint, opened on first use.
struct Shard {
    path: PathBuf,
    file: OnceLock<TensorFile>,
}

impl Shard {
    fn new(path: PathBuf) -> Shard {
        Shard { path, file: OnceLock::new() }
    }

    fn opened(&self) -> Result<&TensorFile> {
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let file = TensorFile::open(&self.path)?;
        Ok(self.file.get_or_init(|| file))
    }
}

/// The tensors of a checkpoint, by name, whichever file holds them.
pub(crate) struct TensorStore {
    shards: Vec<Shard>,
    /// Tensor name → shard.
    names: HashMap<String, usize>,
    /// The index file, where there is one (for messages about what it lists).
    index: Option<PathBuf>,
}

impl TensorStore {
    /// One safetensors file, opened and its header read now.
    pub(crate) fn file(path: &Path) -> Result<TensorStore> {
        let shard = Shard::new(path.to_path_buf());
        let names = shard.opened()?.names().map(|name| (name, 0)).collect();
        Ok(TensorStore { shards: vec![shard], names, index: None })
    }

    /// The checkpoint in `dir`: its index and the shards it lists (each must exist; they are
    /// opened on first use), or its one `model.safetensors`.
    pub(crate) fn directory(dir: &Path) -> Result<TensorStore> {
        let index_path = dir.join(INDEX_FILE);
        if !index_path.exists() {
            let single = dir.join(SINGLE_FILE);
            if !single.exists() {
                return Err(checkpoint_error(dir, "<file>", format!("holds neither {INDEX_FILE} nor {SINGLE_FILE}")));
            }
            return TensorStore::file(&single);
        }
        let bad = |problem: String| checkpoint_error(&index_path, "<file>", problem);
        let text = crate::files::read_small_text(&index_path, MAX_INDEX_BYTES).map_err(bad)?;
        let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
        let mut files: Vec<&str> = Vec::new();
        let mut names = HashMap::with_capacity(map.len());
        for (tensor, file) in map {
            let file =
                file.as_str().ok_or_else(|| checkpoint_error(&index_path, tensor, "its shard is not a string"))?;
            if file.is_empty() || Path::new(file).components().count() != 1 || file.starts_with('.') {
                return Err(checkpoint_error(
                    &index_path,
                    tensor,
                    format!("shard {file:?} is not a file name in the directory"),
                ));
            }
            let shard = match files.iter().position(|f| *f == file) {
                Some(i) => i,
                None => {
                    files.push(file);
                    files.len() - 1
                }
            };
            names.insert(tensor.clone(), shard);
        }
        let shards: Vec<Shard> = files.iter().map(|f| Shard::new(dir.join(f))).collect();
        if let Some(missing) = shards.iter().find(|s| !s.path.is_file()) {
            return Err(checkpoint_error(
                &missing.path,
                "<file>",
                format!("named by {INDEX_FILE} but absent (or not a regular file)"),
            ));
        }
        Ok(TensorStore { shards, names, index: Some(index_path) })
    }

    /// The file that lists the tensors: the index, or the one file.
    pub(crate) fn location(&self) -> &Path {
        self.index.as_deref().unwrap_or(&self.shards[0].path)
    }

    /// The file that holds `name` (by the index), or the one that lists the tensors where no
    /// file holds it.
    pub(crate) fn file_of(&self, name: &str) -> &Path {
        self.names.get(name).map_or(self.location(), |&shard| &self.shards[shard].path)
    }

    /// The files of the checkpoint.
    pub(crate) fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// Whether the checkpoint lists a tensor of this name.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Every tensor name.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// The tensor `name`, if the checkpoint lists it; a shard that does not hold a tensor its
    /// index puts there is refused.
    pub(crate) fn get(&self, name: &str) -> Result<Option<Tensor<'_>>> {
        let Some(&shard) = self.names.get(name) else { return Ok(None) };
        let shard = &self.shards[shard];
        match shard.opened()?.tensor(&shard.path, name) {
            Some(tensor) => Ok(Some(tensor)),
            None => {
                let index = self.index.as_deref().map_or("its index".into(), |p| p.display().to_string());
                Err(checkpoint_error(
                    &shard.path,
                    name,
                    format!("{index} puts it in this file, which does not hold it"),
                ))
            }
        }
    }
}
