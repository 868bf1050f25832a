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

// Phase B: types as run-time values.

#[test]
fn s10_is_returns_the_value_or_an_error_with_details() {
    prints(
        "s10",
        r#"type User = {id: string, age: integer @min(0)}
local u, e1 = User:is({id = "a1", age = 30})
print(u ~= nil, e1)
local bad, e2 = User:is({id = "a1", age = -1})
print(bad, errors.is(e2, errors.INVALID), e2:message())
local miss, e3 = User:is({age = 1})
print(miss, e3:message(), e3:details().field)
"#,
        &[
            "true\tnil",
            "nil\ttrue\tage: value below minimum",
            "nil\tid: required field missing\tid",
        ],
    );
}

#[test]
fn s11_calling_a_type_validates_or_raises_at_the_caller() {
    let (status, printed, log) = run(
        "s11",
        "type Port = integer @min(1) @max(65535)\nprint(Port(8080))\nprint(pcall(function() local v = Port(\"80\"); return v end))\nprint(pcall(function() local v = Port(0); return v end))\n",
    );
    assert_eq!(status, Some(0), "{log}");
    assert_eq!(printed.len(), 3, "{log}");
    assert_eq!(printed[0], "8080");
    assert!(
        printed[1].starts_with("false\t")
            && printed[1].ends_with("s.lua:3: expected Port, got string"),
        "{log}"
    );
    assert!(
        printed[2].starts_with("false\t")
            && printed[2].ends_with("s.lua:4: expected Port, got number"),
        "{log}"
    );
}

#[test]
fn s13_locals_and_parameters_shadow_type_meaning() {
    prints(
        "s13b",
        r#"type Point = {x: number}
local string = {is = function(_, v) return "mine", v end}
print(string:is(5))
local function check(Point) return Point:is(1) end
print(check({is = function() return "param" end}))
print((Point:is({x = 1})) ~= nil)
"#,
        &["mine\t5", "param", "true"],
    );
}

#[test]
fn s14_hoisting_and_generics() {
    prints(
        "s14",
        r#"local function valid(v) return (StrBox:is(v)) ~= nil end
type StrBox = Box<string>
type Box<T> = {value: T}
print(valid({value = "x"}), valid({value = 1}))
"#,
        &["true\tfalse"],
    );
}

#[test]
fn s15_reflection_and_first_class_use() {
    prints(
        "s15",
        r#"type Status = "queued" | "done"
type Job = {id: integer, status: Status, tags?: {string}}
local out = {}
for name, t in Job:fields() do out[#out + 1] = name .. "=" .. t:kind() end
local by_type = {[Job] = "job"}
print(table.concat(out, " "), Job:kind(), Job:name(), Status:kind(), by_type[Job])
"#,
        &["id=integer status=union tags=array\trecord\tJob\tunion\tjob"],
    );
}

#[test]
fn s16_an_unknown_type_is_reported_and_still_runs() {
    let source = "local function f(x: Strng): number return 1 end\nprint(f(\"a\"))\n";
    prints("s16", source, &["1"]);
    let dir = app(
        "typed-s16-check",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n",
            ),
            ("main.lua", source),
        ],
    );
    let out = warren(&["check", &dir.display().to_string(), "--format", "short"]);
    let log = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "T diagnostics do not fail check: {log}"
    );
    assert!(log.contains("main.lua:1:21: error[T001]"), "{log}");
}

#[test]
fn s18_validator_diagnostics_in_check() {
    let dir = app(
        "typed-s18",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n",
            ),
            (
                "main.lua",
                "type Email = string @pattern(\"([a-z\")\ntype Age = {n: number} @min(0)\nreturn function() end\n",
            ),
        ],
    );
    let out = warren(&["check", &dir.display().to_string(), "--format", "short"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("main.lua:1:30: error[T004]"), "{log}");
    assert!(log.contains("main.lua:2:24: warning[T005]"), "{log}");
}

#[test]
fn s19_nested_types_have_no_run_time_value() {
    let (status, printed, log) = run(
        "s19",
        "local function f(v)\n    type Local = {x: number}\n    return Local:is(v)\nend\nprint(pcall(f, {x = 1}))\n",
    );
    assert_eq!(status, Some(0), "{log}");
    assert_eq!(printed.len(), 1, "{log}");
    assert!(
        printed[0].starts_with("false\t")
            && printed[0].ends_with("s.lua:3: attempt to index a nil value (global 'Local')"),
        "{log}"
    );
}

#[test]
fn a_validation_of_a_huge_table_stops_at_the_slice_and_the_cpu_budget() {
    // Validation polls the process's budget: a tenant cannot hold its
    // worker with a huge table. Past the slice the check fails (an error
    // the process may catch, and it is preempted); checks again and again
    // reach the cpu_budget, and that stop cannot be caught.
    let dir = app(
        "typed-budget",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: h\n    kind: process.host\n    limits: { cpu_budget: 200ms, memory_per_process: 512MiB }\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n    method: main\n",
            ),
            (
                "main.lua",
                "type Deep = {{{{number}}}}\nlocal function main()\n    local row = {}\n    for i = 1, 1000 do row[i] = i end\n    local t = {}\n    for i = 1, 100 do t[i] = {row, row, row, row, row, row, row, row, row, row} end\n    local big = {}\n    for i = 1, 400 do big[i] = t end\n    print(Deep:is(big))\n    for _ = 1, 100000 do pcall(Deep.is, Deep, big) end\n    print(\"caught\")\nend\nreturn { main = main }\n",
            ),
        ],
    );
    let out = warren(&["run", &dir.display().to_string(), "-x", "app:main"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("nil\tvalidation stopped: cpu budget exceeded"),
        "the first check is stopped at the slice, its error returned: {log}"
    );
    assert!(
        log.contains("[RATE_LIMITED]") && log.contains("cpu budget exceeded"),
        "the budget ended the process: {log}"
    );
    assert!(!log.contains("caught"), "the stop cannot be caught: {log}");
}

// Phase C: checks, and the type system's settings.

const ONE_ENTRY: &str = "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n    method: main\n";

const S16: &str = "local function f(x: Strng): number return 1 end\nlocal function main() print(f(\"a\")) end\nreturn { main = main }\n";

#[test]
fn strict_mode_refuses_an_entry_with_a_type_error_and_default_runs_it() {
    let plain = app(
        "typed-default",
        &[("_index.yaml", ONE_ENTRY), ("main.lua", S16)],
    );
    let out = warren(&["run", &plain.display().to_string(), "-x", "app:main"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let strict = app(
        "typed-strict",
        &[
            ("_index.yaml", ONE_ENTRY),
            ("main.lua", S16),
            (
                ".wippy.yaml",
                "lua:\n  type_system:\n    enabled: true\n    strict: true\n",
            ),
        ],
    );
    let out = warren(&["run", &strict.display().to_string(), "-x", "app:main"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("main.lua:1:21: error[T001]"), "{log}");
    assert!(!log.contains("INFO 1"), "nothing ran: {log}");
    // S17 too: its T010/T012 errors refuse it under strict.
    let s17 = app(
        "typed-strict-s17",
        &[
            ("_index.yaml", ONE_ENTRY),
            (
                "main.lua",
                "local function add(a: number, b: number): number\n    return a + b\nend\nlocal n: number = \"ten\"\nlocal s = add(1)\nreturn { main = function() print(\"ran\") end }\n",
            ),
            (".wippy.yaml", "lua:\n  type_system:\n    strict: true\n"),
        ],
    );
    let out = warren(&["run", &s17.display().to_string(), "-x", "app:main"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("[T010]") && log.contains("[T012]") && !log.contains("INFO ran"),
        "{log}"
    );
    let bad = app(
        "typed-badconf",
        &[
            ("_index.yaml", ONE_ENTRY),
            ("main.lua", S16),
            (
                ".wippy.yaml",
                "lua:\n  type_system:\n    strict: sometimes\n",
            ),
        ],
    );
    let out = warren(&["check", &bad.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("lua.type_system.strict"), "{log}");
}

#[test]
fn check_types_fails_on_a_type_error_and_prints_short_and_json_forms() {
    let dir = app(
        "typed-check-forms",
        &[("_index.yaml", ONE_ENTRY), ("main.lua", S16)],
    );
    let d = dir.display().to_string();
    let out = warren(&["check", &d, "--types"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("error[T001]") && log.contains(" --> ") && log.contains('^'),
        "{log}"
    );
    let out = warren(&["check", &d, "--format", "short"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("main.lua:1:21: error[T001]: "),
        "{}",
        stderr(&out)
    );
    let out = warren(&["check", &d, "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"code\":\"T001\"")
            && l.contains("\"line\":1")
            && l.contains("\"column\":21")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"checked_entries\":1") && l.contains("\"errors\":1")),
        "{stdout}"
    );
}

#[test]
fn s17_literal_mismatch_and_arity_are_reported_and_the_program_still_runs() {
    let source = "local function add(a: number, b: number): number\n    return a + b\nend\nlocal n: number = \"ten\"\nlocal s = add(1)\n";
    let dir = app(
        "typed-s17",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n",
            ),
            ("main.lua", source),
        ],
    );
    let out = warren(&["check", &dir.display().to_string(), "--format", "short"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "without --types: {log}");
    assert!(log.contains("main.lua:4:19: error[T010]"), "{log}");
    assert!(log.contains("main.lua:5:11: error[T012]"), "{log}");
    let (status, _, log) = run("s17", source);
    assert_eq!(status, Some(1), "{log}");
    assert!(
        log.contains("s.lua:2: attempt to perform arithmetic on a nil value (local 'b')"),
        "{log}"
    );
}

#[test]
fn the_pattern_validator_matches_with_a_real_regex() {
    prints(
        "pattern",
        r#"type Email = string @pattern("^[a-z]+@[a-z]+\\.[a-z]+$")
print(Email:is("ann@example.org") ~= nil)
local _, e1 = Email:is("Ann at example")
print(e1:message(), e1:details().constraint)
local _, e2 = Email:is(42)
print(e2:message())
"#,
        &[
            "true",
            "pattern mismatch\tpattern",
            "expected Email, got number",
        ],
    );
}
