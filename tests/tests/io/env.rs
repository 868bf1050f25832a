//! `env` through real processes: declared variables only (never the raw
//! OS environment), grants on the public name or the entry id, readonly
//! variables and storages, defaults, and `get_all`.

use std::sync::Arc;

use warren_core::Value;
use warren_env::{Env, StorageDef, StorageKind, VariableDef};
use warren_tests::*;

use super::grants;

fn var(
    id: &str,
    name: Option<&str>,
    storage: &str,
    default: Option<&str>,
    readonly: bool,
) -> VariableDef {
    VariableDef {
        id: id.into(),
        variable: name.map(Into::into),
        storage: storage.into(),
        default: default.map(Into::into),
        readonly,
    }
}

fn env() -> Arc<Env> {
    let storages = vec![
        StorageDef {
            id: "app.env:os".into(),
            kind: StorageKind::Os,
        },
        StorageDef {
            id: "app.env:defaults".into(),
            kind: StorageKind::Static(vec![("PORT".into(), "8080".into())]),
        },
        StorageDef {
            id: "app.env:runtime".into(),
            kind: StorageKind::Memory,
        },
    ];
    let variables = vec![
        var("app.env:port", Some("PORT"), "app.env:defaults", None, true),
        var(
            "app.env:mode",
            Some("APP_MODE"),
            "app.env:runtime",
            Some("dev"),
            false,
        ),
        var("app.env:path", Some("PATH"), "app.env:os", None, true),
        var("app.env:token", None, "app.env:runtime", None, false),
    ];
    Arc::new(Env::new(storages, variables).expect("env"))
}

fn run_env(source: &str, g: warren_core::Grants) -> Value {
    let exit = App::new()
        .extension(env())
        .granted("t:main", source, g)
        .run("t:main", Vec::new());
    match exit {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn declared_variables_grants_and_writes() {
    let v = run_env(
        r#"local env = require("env")
    return function()
        local out = {}
        local function k(v, e) out[#out + 1] = v ~= nil and tostring(v) or e:kind() end
        k(env.get("PORT"))
        k(env.get("app.env:port"))
        k(env.get("APP_MODE"))              -- the default
        k(env.set("APP_MODE", "prod"))
        k(env.get("APP_MODE"))
        k(env.set("PORT", "1"))             -- readonly
        k(env.get("HOME"))                  -- undeclared: never the OS environment
        k(env.get("PATH"))                  -- declared on the os storage, not granted
        k(env.get("app.env:token"))         -- granted, unset, no default
        k(env.set("app.env:token", "t1"))
        k(env.get("token"))                 -- <caller's namespace>:token is not app.env
        k(env.get(""))
        local all = assert(env.get_all())
        local keys = {}
        for name in pairs(all) do keys[#keys + 1] = name end
        table.sort(keys)
        out[#out + 1] = table.concat(keys, ",")
        return table.concat(out, " ")
    end"#,
        grants(&[
            ("env.get", "PORT"),
            ("env.get", "APP_*"),
            ("env.set", "APP_MODE"),
            ("env.set", "PORT"),
            ("env.get", "app.env:token"),
            ("env.set", "app.env:token"),
        ]),
    );
    assert_eq!(
        v,
        s(
            "8080 8080 dev true prod PermissionDenied PermissionDenied PermissionDenied NotFound true PermissionDenied Invalid APP_MODE,PORT,app.env:token"
        )
    );
}

#[test]
fn without_grants_nothing_is_readable() {
    let v = run_env(
        r#"local env = require("env")
    return function()
        local out = {}
        for _, name in ipairs({ "PORT", "app.env:port", "PATH", "NOPE" }) do
            local v, e = env.get(name)
            out[#out + 1] = v or e:kind()
        end
        local all = assert(env.get_all())
        out[#out + 1] = tostring(next(all))
        return table.concat(out, " ")
    end"#,
        warren_core::Grants::new(),
    );
    assert_eq!(
        v,
        s("PermissionDenied PermissionDenied PermissionDenied PermissionDenied nil")
    );
}
