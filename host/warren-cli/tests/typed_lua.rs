//! Wippy's typed Lua through the `warren` binary: the snippets of phase A
//! of `shared/spec/typed-lua.md` (S1–S9, S12, S13's `string` lines, S20),
//! each run as `warren run snippet.lua` and compared with the stated
//! output or diagnostic.

mod common;

use common::{app, stderr, warren};

/// Runs `source` as a script; its exit status and what `print` wrote (the
/// text of each log line, without the level and the pid tag).
fn run(name: &str, source: &str) -> (Option<i32>, Vec<String>, String) {
    let dir = app(&format!("typed-{name}"), &[("s.lua", source)]);
    let out = warren(&["run", &dir.join("s.lua").display().to_string()]);
    let log = stderr(&out);
    let printed = log
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("INFO "))
        .map(|l| {
            l.rsplit_once(" pid=")
                .map_or(l, |(text, _)| text)
                .to_owned()
        })
        .collect();
    (out.status.code(), printed, log)
}

fn prints(name: &str, source: &str, want: &[&str]) {
    let (status, printed, log) = run(name, source);
    assert_eq!(status, Some(0), "{name}: {log}");
    assert_eq!(printed, want, "{name}: {log}");
}

/// Refused before anything runs: exit 2, the code at `file:line:column`,
/// and `words` in the message.
fn refused(name: &str, source: &str, at: &str, words: &str) {
    let (status, printed, log) = run(name, source);
    assert_eq!(status, Some(2), "{name}: {log}");
    assert!(printed.is_empty(), "{name}: nothing runs: {log}");
    assert!(
        log.contains(&format!("s.lua:{at}:")),
        "{name}: position {at}: {log}"
    );
    assert!(
        log.contains("[P0001]") && log.contains(words),
        "{name}: {log}"
    );
}

#[test]
fn s1_plain_annotations_erase() {
    prints(
        "s1",
        "local function add(a: integer, b: integer): integer\n    return a + b\nend\nlocal total: integer = add(2, 3)\nprint(total)\n",
        &["5"],
    );
}

#[test]
fn s2_records_optional_fields_literal_unions_and_bare_multi_return() {
    prints(
        "s2",
        r#"type Job = {id: integer, input: integer, tag?: string}
type Status = "queued" | "done"

local function next_job(q: {Job}): Job?, string?
    local j = table.remove(q, 1)
    if not j then return nil, "empty" end
    return j, nil
end

local queue: {Job} = {{id = 1, input = 3}}
local job, err = next_job(queue)
local status: Status = "done"
print(job.id, err, status, next_job(queue))
"#,
        &["1\tnil\tdone\tnil\tempty"],
    );
}

#[test]
fn s3_run_time_errors_keep_the_original_line() {
    let (status, _, log) = run(
        "s3",
        "type Point = {\n    x: number,\n    y: number,\n}\nlocal function norm(p: Point): number\n    return math.sqrt(p.x * p.x + p.y * p.y)\nend\nprint(norm(nil))\n",
    );
    assert_eq!(status, Some(1), "{log}");
    assert!(
        log.contains("s.lua:6: attempt to index a nil value (local 'p')"),
        "{log}"
    );
}

#[test]
fn s4_a_syntax_error_inside_a_type() {
    refused("s4", "local x: number< = 42\n", "1:18", "'='");
}

#[test]
fn s5_casts_and_non_nil_assertions_are_erased() {
    prints(
        "s5",
        "local raw: any = {count = \"7\"}\nlocal n = raw.count :: number\nlocal m = (raw as {count: string}).count\nlocal s = (m!) .. \"!\"\nprint(type(n), m, s)\n",
        &["string\t7\t7!"],
    );
}

#[test]
fn s6_a_non_nil_assertion_is_not_a_prefix_expression() {
    refused(
        "s6",
        "local user = {name = \"a\"}\nprint(user!.name)\n",
        "2:12",
        "",
    );
    prints(
        "s6-ok",
        "local user = {name = \"a\"}\nprint((user!).name)\n",
        &["a"],
    );
}

#[test]
fn s7_labels_are_not_casts() {
    prints(
        "s7",
        "for i = 1, 3 do\n    local t = {n = i}\n    if i == 2 then goto continue end\n    print(t.n)\n    ::continue::\nend\n",
        &["1", "3"],
    );
}

#[test]
fn s8_a_cast_before_a_line_starting_with_a_parenthesis() {
    prints(
        "s8",
        "local f = print\nlocal v = f :: any\n(f)(\"called\")\n",
        &["called"],
    );
}

#[test]
fn s9_reserved_words_and_keys() {
    refused("s9", "local as = 1\n", "1:7", "");
    prints(
        "s9-ok",
        "local t = {type = \"x\", is = true}\nprint(t.type, t.is, type(t))\n",
        &["x\ttrue\ttable"],
    );
}

#[test]
fn s12_primitive_type_calls_validate_and_leave_the_library_alone() {
    let (status, printed, log) = run(
        "s12",
        "print(string(\"ab\"), integer(4), number(2.5), boolean(false))\nprint(pcall(function() local v = string(42); return v end))\nprint(string.format(\"%d-%s\", 7, string.upper(\"x\")))\nprint(pcall(function() local v = integer(2.5); return v end))\n",
    );
    assert_eq!(status, Some(0), "{log}");
    assert_eq!(printed.len(), 4, "{log}");
    assert_eq!(printed[0], "ab\t4\t2.5\tfalse");
    assert!(
        printed[1].starts_with("false\t")
            && printed[1].ends_with("s.lua:2: expected string, got number"),
        "{log}"
    );
    assert_eq!(printed[2], "7-X");
    assert!(
        printed[3].ends_with("s.lua:4: expected integer, got number"),
        "{log}"
    );
}

#[test]
fn s13_a_local_shadows_the_string_type() {
    prints(
        "s13",
        "local string = {is = function(_, v) return \"mine\", v end}\nprint(string:is(5))\n",
        &["mine\t5"],
    );
}

#[test]
fn s20_the_unpack_global() {
    prints("s20", "print(unpack({1, 2}))\n", &["1\t2"]);
}

#[test]
fn check_reports_a_dialect_syntax_error_with_its_code_and_column() {
    let dir = app(
        "typed-check",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n",
            ),
            ("main.lua", "local x: number< = 42\nreturn function() end\n"),
        ],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("entry 'app:main'")
            && log.contains("main.lua:1:18:")
            && log.contains("[P0001]"),
        "{log}"
    );
}

#[test]
fn load_inside_a_process_translates_typed_text() {
    prints(
        "load",
        "local f = load(\"local n: integer = 40\\nreturn n + 2\")\nprint(f())\nprint(load(\"local x: = 1\"))\n",
        &[
            "42",
            "nil\t[string \"local x: = 1\"]:1:10: expected a type, found '=' [P0001]",
        ],
    );
}
