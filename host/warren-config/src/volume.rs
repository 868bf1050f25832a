//! `fs.directory` entries (modules.md §3 "fs", "Entries"): a volume's root
//! resolved against the application folder (`base: module`) or Warren's
//! working directory (`base: project`), and its mode, checked at load. The
//! directory must exist unless `auto_init` lets the fs module create it;
//! loading itself creates nothing.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

use crate::ConfigError;
use crate::index::Ctx;
use crate::modes;

/// `kind: fs.directory`.
pub(crate) const DIRECTORY: &str = "fs.directory";

/// `mode` when absent.
const DEFAULT_MODE: u32 = 0o755;

/// A volume: an `fs.directory` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeEntry {
    /// `<namespace>:<name>`.
    pub id: String,
    /// The root, resolved per `base`.
    pub directory: PathBuf,
    /// `auto_init`: create the directory (and parents) if missing.
    pub auto_init: bool,
    /// `mode` (default `0o755`): the owner bits decide what the volume
    /// allows (4 read, 2 write). Each read bit without its execute bit has
    /// it added, as in Wippy.
    pub mode: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    directory: String,
    auto_init: Option<bool>,
    mode: Option<Yaml>,
    base: Option<String>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

impl Ctx<'_> {
    /// Reads an `fs.directory` entry.
    pub(crate) fn volume(&self, id: &str, yaml: &Yaml) -> Result<VolumeEntry, ConfigError> {
        let y: DirectoryYaml = self.parse(id, yaml)?;
        // `${env:...}` and `${NAME}` resolve as in every string field.
        let raw = self.resolve(id, "directory", &y.directory, false)?.value;
        if raw.trim().is_empty() {
            return Err(self.key_error(id, "directory", "must not be empty"));
        }
        self.path_text(id, "directory", &raw)?;
        let mode = modes::parse_or(y.mode.as_ref(), DEFAULT_MODE)
            .map_err(|msg| self.key_error(id, "mode", msg))?;
        if mode & 0o600 == 0 {
            let msg = format!(
                "{mode:04o}: the owner bits grant neither read (4) nor write (2), \
                 so the volume would allow nothing"
            );
            return Err(self.key_error(id, "mode", msg));
        }
        let directory = self.base(id, y.base.as_deref())?.join(&raw);
        let auto_init = y.auto_init.unwrap_or(false);
        if directory.exists() && !directory.is_dir() {
            let msg = format!("{} is not a directory", directory.display());
            return Err(self.key_error(id, "directory", msg));
        }
        if !auto_init && !directory.exists() {
            let msg = format!(
                "{} does not exist (set auto_init: true to create it)",
                directory.display()
            );
            return Err(self.key_error(id, "directory", msg));
        }
        Ok(VolumeEntry {
            id: id.to_owned(),
            directory,
            auto_init,
            mode: with_execute(mode),
        })
    }

    /// The folder a relative `directory` resolves against.
    fn base(&self, id: &str, base: Option<&str>) -> Result<PathBuf, ConfigError> {
        match base {
            None | Some("module") => Ok(self.root.to_path_buf()),
            Some("project") => std::env::current_dir().map_err(|e| {
                let msg = format!("cannot read Warren's working directory: {e}");
                self.key_error(id, "base", msg)
            }),
            Some(other) => {
                let msg = format!("unknown base '{other}' (expected module or project)");
                Err(self.key_error(id, "base", msg))
            }
        }
    }
}

/// `mode` with an execute bit added to each read bit that lacks one.
fn with_execute(mode: u32) -> u32 {
    (0..3).fold(mode, |mode, class| {
        let read = 0o4 << (class * 3);
        if mode & read != 0 {
            mode | (0o1 << (class * 3))
        } else {
            mode
        }
    })
}

#[cfg(test)]
mod tests {
    use super::with_execute;

    #[test]
    fn read_bits_gain_execute() {
        assert_eq!(with_execute(0o644), 0o755);
        assert_eq!(with_execute(0o600), 0o700);
        assert_eq!(with_execute(0o200), 0o200);
        assert_eq!(with_execute(0o555), 0o555);
    }
}
