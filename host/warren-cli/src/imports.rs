//! The `library.lua` entries as the Lua front-end loads them: each entry's
//! `imports:` become `(alias, library)` pairs, built recursively, one
//! shared `Arc` per library id (however many entries import it).

use std::collections::BTreeMap;
use std::sync::Arc;

use warren_config::{App, EntryKind};
use warren_lua::LuaLibrary;

/// Libraries built so far, by entry id.
#[derive(Default)]
pub(crate) struct Libraries {
    built: BTreeMap<String, Arc<LuaLibrary>>,
}

impl Libraries {
    /// The `(alias, library)` pairs of `imports` (alias -> entry id).
    /// Targets that are not libraries are skipped: loading the
    /// configuration has already refused them.
    pub(crate) fn resolve(
        &mut self,
        app: &App,
        imports: &BTreeMap<String, String>,
    ) -> Vec<(String, Arc<LuaLibrary>)> {
        imports
            .iter()
            .filter_map(|(alias, id)| Some((alias.clone(), self.library(app, id)?)))
            .collect()
    }

    /// Library `id`, built with its own imports (the configuration has no
    /// import cycles, so this ends).
    fn library(&mut self, app: &App, id: &str) -> Option<Arc<LuaLibrary>> {
        if let Some(lib) = self.built.get(id) {
            return Some(lib.clone());
        }
        let EntryKind::Library(entry) = &app.entries.get(id)?.kind else {
            return None;
        };
        let imports = self.resolve(app, &entry.imports);
        let lib = Arc::new(LuaLibrary::new(
            id,
            entry.path.display().to_string(),
            entry.source.as_str(),
            entry.modules.clone(),
            imports,
        ));
        self.built.insert(id.to_owned(), lib.clone());
        Some(lib)
    }
}
