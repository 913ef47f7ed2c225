//! The training/evaluation corpus: real files in a directory tree, split into train
//! and test **by file** (a file's chunks never land on both sides), and cut into chunks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Files shorter than this are skipped (too small to be a chunk worth selecting for).
pub const MIN_FILE_LEN: u64 = 512;
/// At most this much of a file is read; chunks are spread over that prefix.
pub const MAX_READ_LEN: u64 = 16 << 20;
/// The checksum list `scripts/fetch-compression-corpus.sh` writes at the corpus root:
/// metadata about the corpus, not part of it, so [`scan`] skips it.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// Share of files, in percent, that [`split_of`] assigns to the test side.
pub const TEST_PERCENT: u32 = 30;

/// Which side of the split a file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Used for training.
    Train,
    /// Held out for evaluation.
    Test,
}

/// The side of `relative_path`: a CRC-32 of the path decides, so the split is stable
/// across runs and machines and needs no list in the repository.
pub fn split_of(relative_path: &str) -> Split {
    if crc32fast::hash(relative_path.as_bytes()) % 100 < TEST_PERCENT {
        Split::Test
    } else {
        Split::Train
    }
}

/// One file of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    /// Full path.
    pub path: PathBuf,
    /// Path relative to the corpus root, `/`-separated (decides the split).
    pub relative: String,
    /// File length in bytes.
    pub len: u64,
}

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing usable was found.
    #[error("no usable files (>= {MIN_FILE_LEN} bytes) for split {split:?} under {dir}")]
    Empty {
        /// The directory.
        dir: String,
        /// The split asked for.
        split: Option<Split>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Lists the regular files under `dir` (symlinks are not followed), sorted by
/// relative path, keeping those of at least [`MIN_FILE_LEN`] bytes and, if `split`
/// is given, only that side. The [`MANIFEST`] at the root is not a corpus file.
pub fn scan(dir: &Path, split: Option<Split>) -> Result<Vec<CorpusFile>, CorpusError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(io_err(&path))?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                let len = entry.metadata().map_err(io_err(&path))?.len();
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if len >= MIN_FILE_LEN
                    && relative != MANIFEST
                    && split.is_none_or(|s| split_of(&relative) == s)
                {
                    out.push(CorpusFile {
                        path,
                        relative,
                        len,
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(CorpusError::Empty {
            dir: dir.display().to_string(),
            split,
        });
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(out)
}

/// Reads at most [`MAX_READ_LEN`] bytes of a corpus file.
pub fn read_prefix(file: &CorpusFile) -> Result<Vec<u8>, CorpusError> {
    use std::io::Read;
    let f = std::fs::File::open(&file.path).map_err(io_err(&file.path))?;
    let mut buf = Vec::with_capacity(file.len.min(MAX_READ_LEN) as usize);
    f.take(MAX_READ_LEN)
        .read_to_end(&mut buf)
        .map_err(io_err(&file.path))?;
    Ok(buf)
}

/// How files are cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    /// Chunk sizes; every file is cut at every size.
    pub sizes: Vec<usize>,
    /// At most this many chunks per file and size, spread evenly over the file, so
    /// large files do not dominate.
    pub max_per_size: usize,
}

impl Default for ChunkPlan {
    fn default() -> Self {
        ChunkPlan {
            sizes: vec![16 << 10, 64 << 10],
            max_per_size: 6,
        }
    }
}

impl ChunkPlan {
    /// The chunks of `data`: for each size, up to `max_per_size` non-overlapping
    /// chunks evenly spread over the data; a file shorter than a size gives one chunk
    /// of its whole length (once, at the smallest such size).
    pub fn chunks<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut whole_taken = false;
        for &size in &self.sizes {
            if size == 0 {
                continue;
            }
            if data.len() <= size {
                if !whole_taken && !data.is_empty() {
                    out.push(data);
                    whole_taken = true;
                }
                continue;
            }
            let slots = data.len() / size;
            let k = slots.min(self.max_per_size.max(1));
            for i in 0..k {
                let slot = if k == 1 { 0 } else { i * (slots - 1) / (k - 1) };
                out.push(&data[slot * size..(slot + 1) * size]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_roughly_proportional() {
        let names: Vec<String> = (0..1000).map(|i| format!("dir/file{i}.bin")).collect();
        let test = names.iter().filter(|n| split_of(n) == Split::Test).count();
        assert!((200..400).contains(&test), "{test}");
        assert_eq!(split_of("a/b"), split_of("a/b"));
    }

    #[test]
    fn chunks_are_spread_and_bounded() {
        let plan = ChunkPlan {
            sizes: vec![10, 100],
            max_per_size: 3,
        };
        let data: Vec<u8> = (0..95u8).collect();
        let chunks = plan.chunks(&data);
        // three chunks of 10 (first, middle, last slot) and the whole file once.
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0][0], 0);
        assert_eq!(chunks[2][0], 80);
        assert_eq!(chunks[3].len(), 95);
        assert!(plan.chunks(&[]).is_empty());
    }

    #[test]
    fn scan_lists_and_splits_files() {
        let dir = std::env::temp_dir().join(format!("dwcp-corpus-test-{}", std::process::id()));
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).expect("mkdir");
        for i in 0..20 {
            std::fs::write(sub.join(format!("f{i}")), vec![i as u8; 600]).expect("write");
        }
        std::fs::write(dir.join("tiny"), b"x").expect("write");
        std::fs::write(dir.join(MANIFEST), vec![b'0'; 600]).expect("write");
        let all = scan(&dir, None).expect("scan");
        assert_eq!(all.len(), 20);
        assert!(all.iter().all(|f| f.relative.starts_with("sub/")));
        let test = scan(&dir, Some(Split::Test)).map(|v| v.len()).unwrap_or(0);
        let train = scan(&dir, Some(Split::Train)).map(|v| v.len()).unwrap_or(0);
        assert_eq!(test + train, 20);
        assert_eq!(read_prefix(&all[0]).expect("read").len(), 600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(matches!(scan(&dir, None), Err(CorpusError::Io { .. })));
    }
}
