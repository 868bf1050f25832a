//! Wippy's project file `.wippy.yaml`: Warren reads `lua.type_system`
//! (`enabled`, `strict`) and ignores every other key.

use std::path::Path;

use serde_yaml_ng::Value as Yaml;

use crate::{ConfigError, TypeSystem};

/// The project file's name.
pub const PROJECT_FILE: &str = ".wippy.yaml";

/// The `lua.type_system` settings of the project file in `root` or the
/// folder above it (defaults when there is none).
pub(crate) fn type_system(root: &Path) -> Result<TypeSystem, ConfigError> {
    let candidates = [Some(root), root.parent()];
    let Some(file) = candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(PROJECT_FILE))
        .find(|f| f.is_file())
    else {
        return Ok(TypeSystem::default());
    };
    let file_error = |message: String| ConfigError::File {
        file: file.clone(),
        message,
    };
    let text = warren_core::readfile::read_text_bounded(&file, crate::index::MAX_INDEX_BYTES)
        .map_err(|e| file_error(format!("cannot read: {e}")))?;
    let yaml: Yaml = crate::yaml::parse(&file, &text)?;
    let Some(ts) = yaml.get("lua").and_then(|l| l.get("type_system")) else {
        return Ok(TypeSystem::default());
    };
    let flag = |key: &str| match ts.get(key) {
        None | Some(Yaml::Null) => Ok(false),
        Some(Yaml::Bool(b)) => Ok(*b),
        Some(other) => Err(file_error(format!(
            "key 'lua.type_system.{key}': expected true or false, got {other:?}"
        ))),
    };
    Ok(TypeSystem {
        enabled: flag("enabled")?,
        strict: flag("strict")?,
    })
}
