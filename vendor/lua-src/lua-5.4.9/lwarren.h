/*
** lwarren.h
** WARREN: cooperative interruption of long-running C loops.
** Not part of upstream Lua; see vendor/lua-src/WARREN.md.
**
** Count hooks only fire while Lua bytecode runs, so a C library loop
** (string.rep, table.move, pattern matching, ...) could run unboundedly
** long without ever giving the embedder's preemption a chance. The
** patched loops call 'warren_poll' (usually through 'warren_pollevery',
** i.e. once every WARREN_POLLINTERVAL iterations). It is cheap: only when
** a count hook is armed on 'L' does it call the embedder's function,
** which may raise a Lua error (lua_error) to abort the loop, or clear
** the hook, or do nothing. Every polling site leaves nothing on the C
** stack that would need freeing if the function longjmps out.
*/

#ifndef lwarren_h
#define lwarren_h

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"


typedef void (*warren_poll_fn) (lua_State *L);

/*
** Set once per process by the embedder, before any Lua state runs;
** NULL (the default) disables polling.
*/
LUA_API void warren_set_poll (warren_poll_fn f);

/*
** 'luaL_traceback' without naming frames by a search of every loaded
** module's fields (lauxlib.c): what an error object's stack is made with.
*/
LUALIB_API void (warren_traceback) (lua_State *L, lua_State *L1,
                                    const char *msg, int level);

/* calls the embedder's function, if any (may not return) */
LUAI_FUNC void warren_pollfn_call (lua_State *L);


/* poll now: calls the embedder's function iff a count hook is armed */
#define warren_poll(L)  \
  ((void)(luai_unlikely(lua_gethookmask(L) & LUA_MASKCOUNT) \
          ? (warren_pollfn_call(L), 0) : 0))

/* must be a power of 2 */
#define WARREN_POLLINTERVAL	1024u

/* poll once every WARREN_POLLINTERVAL calls; 'c' is an 'unsigned int' */
#define warren_pollevery(L,c)  \
  ((void)(luai_unlikely((++(c) & (WARREN_POLLINTERVAL - 1u)) == 0) \
          ? (warren_poll(L), 0) : 0))

/*
** Core-only variant reading the (volatile) hook mask directly; needs
** "lstate.h" at the point of use.
*/
#define warren_corepoll(L)  \
  ((void)(luai_unlikely((L)->hookmask & LUA_MASKCOUNT) \
          ? (warren_pollfn_call(L), 0) : 0))


/*
** The collector's hook: called with begin = 1 before and begin = 0 after
** every collector step and full collection ('luaC_step', 'luaC_fullgc'),
** so the embedder can tell collection time from the running code's own.
** Set once per process, before any Lua state runs; NULL (the default) =
** none. It must not raise, allocate Lua objects or call into Lua.
*/
typedef void (*warren_gc_fn) (lua_State *L, int begin);

LUA_API void warren_set_gc_hook (warren_gc_fn f);

/*
** Passes over the ephemeron tables (weak keys, strong values) the
** collector's atomic phase makes before it gives up converging
** ('convergeephemerons', lgc.c) and marks what is left as strong tables
** for this cycle (their entries survive it). Each pass marks what newly
** marked keys make reachable, so a chain E[k1] = {k2}, E[k2] = {k3}, ...
** in one table took a pass per link: n * n entry visits in one step that
** nothing interrupts (30,000 links, 4 MiB, stalled a worker 5-10 s).
** A chain longer than this is never collected while it is reachable
** (it stays its process's memory, counted as such).
*/
#define WARREN_EPHEMERON_PASSES	32

/* calls the embedder's collector hook, if any */
LUAI_FUNC void warren_gc_call (lua_State *L, int begin);

/*
** The emergency collection's hook (lmem.c, 'tryagain'): an allocation
** past the state's ceiling runs a full collection and tries again, and
** the embedder may refuse that collection when it would only repeat one
** that just freed too little. Called with what = 0 before it (nonzero:
** collect; 0: the allocation fails at once), then what = 1 when the
** retry succeeded or what = 2 when it failed too. 'g' names the state
** (its global state). Set once per process, before any Lua state runs;
** NULL (the default) = always collect. It must not raise, allocate Lua
** objects or call into Lua.
*/
typedef int (*warren_emergency_fn) (lua_State *L, const void *g, int what);

LUA_API void warren_set_emergency_hook (warren_emergency_fn f);

/* calls the embedder's emergency hook, if any (1 when there is none) */
LUAI_FUNC int warren_emergency_call (lua_State *L, int what);

/* keeps a cold path out of its caller's frame */
#if defined(__GNUC__)
#define WARREN_NOINLINE	__attribute__((noinline))
#else
#define WARREN_NOINLINE	/* empty */
#endif

/*
** The allocator of new states (lstate.c, 'lua_newstate'): a state created
** with allocator 'expect' allocates through 'use' instead, with the same
** 'ud' and the same contract, from its first block to its last, while
** 'lua_getallocf' still answers 'expect' (so an embedder that recognises
** its states by their allocator still does). A state created with any
** other allocator, or before this is set, keeps the one it was given; so
** does one given a new allocator by 'lua_setallocf'. Set once per
** process; it may be set while states exist (each new state reads it
** once, atomically). Used by guest-lua/src/alloc.rs.
**
** Such a state's 'ud' is a 'warren_Budget', and lmem.c makes, resizes
** and frees its blocks under 'small.below' bytes itself, with the
** functions of 'small' and the budget's rule ('luaM_malloc_',
** 'luaM_free_', 'luaM_realloc_' through 'warren_smallrealloc'): the
** allocations of a running program, without the call to 'use' (whose
** frame was half of its cost). 'use' must follow the same rule and
** make, resize and free such blocks with the same functions.
*/
typedef struct warren_Small {
  size_t below;  /* blocks of fewer bytes are 'small' */
  void *(*alloc) (size_t n);  /* a block of 'n' bytes, or NULL */
  void (*free) (void *p);  /* frees a block of 'alloc' */
  /* block 'p' of 'alloc' (or NULL) resized to 'n' bytes, its bytes kept,
     or NULL ('p' as it was); 'n' is not 0 */
  void *(*realloc) (void *p, size_t n);
} warren_Small;

/*
** The 'ud' of 'use': the bytes its state holds; growth past 'limit'
** fails, unless the limit is 0 (none) or 'ignore' is set. The layout of
** mlua's memory state (guest-lua/src/alloc.rs checks it against mlua).
*/
typedef struct warren_Budget {
  ptrdiff_t used;
  ptrdiff_t limit;
  unsigned char ignore;
} warren_Budget;

LUA_API void warren_set_alloc (lua_Alloc expect, lua_Alloc use,
                               const warren_Small *small);

/* the small blocks' functions, for states with 'warren_smallblocks' set */
LUAI_DDEC(warren_Small) warren_small;

/* what a state created with allocator 'f' allocates through */
LUAI_FUNC lua_Alloc warren_alloc_for (lua_Alloc f);

/* what the state of 'L' allocates through */
LUA_API lua_Alloc (warren_getalloc) (lua_State *L);

/*
** 'luaD_shrinkstack' of a suspended coroutine (see ldo.c): the stack is
** cut to what its frames use once that saves more than this many slots.
** Every idle process and blocked coroutine is such a thread, so its stack
** is most of what it costs (Lua's own rule, at three times the use with
** a LUA_MINSTACK floor, would never shrink the initial 40 slots).
*/
#define WARREN_STACK_SLACK	8

/*
** Slots a new coroutine's stack starts with (lua_newthread; a state's
** main thread keeps BASIC_STACK_SIZE, 40): 28 with EXTRA_STACK, 448
** bytes rather than 720. Its base frame reserves LUA_MINSTACK slots above
** its function, so at least LUA_MINSTACK + 1. A coroutine that needs
** more grows on its first run and is cut back when it first suspends
** ('lua_resume'), so a burst of coroutines made before any runs (a loop
** of coroutine.spawn) holds small stacks.
*/
#define WARREN_THREAD_STACK	(LUA_MINSTACK + 3)

/*
** The resize hook: called with begin = 1 before and begin = 0 after
** 'luaH_resize' of a table whose new array or hash part has at least
** WARREN_BIG_TABLE slots ('t' is the table), so the embedder can tell the
** time a big table of its own takes to grow (fresh memory, page faults)
** from the running code's own. An error raised inside (out of memory)
** skips the call with begin = 0. Set once per process, before any Lua
** state runs; NULL (the default) = none. It must not raise, allocate Lua
** objects or call into Lua.
*/
typedef void (*warren_resize_fn) (lua_State *L, const void *t, int begin);

LUA_API void warren_set_resize_hook (warren_resize_fn f);

/* 65,536 slots: 1 MiB of array part, 1.5 MiB of hash part */
#define WARREN_BIG_TABLE	(1u << 16)

/*
** The parser's table of a chunk's names and constants (lparser.c,
** luaY_parser) starts with this many hash slots: it grew one rehash and
** allocation at a time through 1, 2, 4, 8 and 16, about 3 % of compiling a
** one-line entry (the cold spawn). Freed with the table after the parse.
*/
#define WARREN_PARSER_NAMES	32

/* calls the embedder's resize hook, if any */
LUAI_FUNC void warren_resize_call (lua_State *L, const void *t, int begin);

/*
** Raw field access with the key held at another index (an interned short
** string, usually an upvalue of the calling C closure), for the
** embedder's machinery: what 'lua_pushvalue' + 'lua_rawget' (or
** 'lua_rawset') do, in one call, with a short string looked up directly.
** The table at 'idx' must be a table; nothing runs a metamethod.
** - warren_rawgetk: pushes t[k], returns its type;
** - warren_rawtruthy: whether t[k] is neither nil nor false (no push);
** - warren_rawint: t[k] if it is an integer, else 0 (no push);
** - warren_rawsetk: t[k] = the value on top, popped (may allocate);
** - warren_rawsetkint: t[k] = n (allocates only for a new key).
*/
LUA_API int (warren_rawgetk) (lua_State *L, int idx, int k);
LUA_API int (warren_rawtruthy) (lua_State *L, int idx, int k);
LUA_API lua_Integer (warren_rawint) (lua_State *L, int idx, int k);
LUA_API void (warren_rawsetk) (lua_State *L, int idx, int k);
LUA_API void (warren_rawsetkint) (lua_State *L, int idx, int k,
                                  lua_Integer n);

/*
** Keys by number: the embedder's field names registered once per state
** ('warren_setkey', in 'global_State'), read without finding the key at
** a stack or upvalue index first. A registered key must stay reachable
** from elsewhere for as long as it is used (Warren's machine keeps each
** as an upvalue of every function that reads it); an unregistered number
** (or a number out of range) reads as absent and a write to it drops
** the value. The same operations as above, 'k' a key number:
** - warren_setkey: key n := the short string on top, popped; 0 (and
**   nothing registered, the value still popped) when it is not a short
**   string or n is out of range;
** - warren_getn, warren_truthyn, warren_intn, warren_setn, warren_setintn:
**   as warren_rawgetk, warren_rawtruthy, warren_rawint, warren_rawsetk,
**   warren_rawsetkint (a write to an existing field never allocates);
** - warren_addintn: t[k] := (t[k] as warren_intn reads it) + d, one
**   lookup where warren_intn and warren_setintn made two; returns the
**   new value (wrapping as Lua's integer addition does).
*/
#define WARREN_NKEYS	64

LUA_API int (warren_setkey) (lua_State *L, int n);
LUA_API int (warren_getn) (lua_State *L, int idx, int n);
LUA_API int (warren_truthyn) (lua_State *L, int idx, int n);
LUA_API lua_Integer (warren_intn) (lua_State *L, int idx, int n);
LUA_API void (warren_setn) (lua_State *L, int idx, int n);
LUA_API void (warren_setintn) (lua_State *L, int idx, int n, lua_Integer v);
LUA_API lua_Integer (warren_addintn) (lua_State *L, int idx, int n,
                                      lua_Integer d);

/*
** 'lua_settop' for the embedder's machinery, which cuts its stack many
** times a call: a cut below the top with no to-be-closed slot above the
** new top is done in place (lua_settop's checks and branches were 25
** instructions); anything else is lua_settop itself.
*/
LUA_API void (warren_settop) (lua_State *L, int idx);

/*
** Raw moves between consecutive integer keys and the stack, for the
** embedder's queues kept in one table ('idx' a table, 0 < n <= 8):
** - warren_rawtake: pushes t[at], ..., t[at + n - 1] and sets each to
**   nil (never allocates);
** - warren_rawput: pops the n values on top into t[at], ..., t[at + n - 1]
**   (the first popped into the last key); may allocate when the table
**   grows (a nil for a key the table does not have leaves it absent,
**   as 'lua_rawseti' does, without going through 'luaH_newkey').
** Slots all in the array part are moved directly (a run-queue wake-up
** went through 'luaH_setint' slot by slot: about 80 instructions each).
*/
LUA_API void (warren_rawtake) (lua_State *L, int idx, lua_Integer at, int n);
LUA_API void (warren_rawput) (lua_State *L, int idx, lua_Integer at, int n);

/*
** The embedder's FIFO queues: a table whose items are in its array part
** at t[h] .. t[t], with 'h' and 't' integer fields under key numbers 'kh'
** and 'kt' (see warren_getn), both 1 and 0 when it is empty. Each is one
** call where field reads, a slot access and field writes were five:
** - warren_qlen: t - h + 1 (a missing field reads as 0);
** - warren_qpush: stores the value at 'v' in slot t + 1 and sets t, when
**   that slot is in the array part (nothing allocates): 1; else 0 and
**   nothing changed (the caller makes room first);
** - warren_qpop: pushes the item at h, taken out (nil when the queue is
**   empty), and moves h on, or sets h, t = 1, 0 when it took the last;
**   returns 1 when that left an array part of more than 'keep' slots
**   (the caller may cut it back), else 0. Never allocates while both
**   fields exist.
*/
LUA_API lua_Integer (warren_qlen) (lua_State *L, int idx, int kh, int kt);
LUA_API int (warren_qpush) (lua_State *L, int idx, int v, int kt);
LUA_API int (warren_qpop) (lua_State *L, int idx, int kh, int kt,
                           unsigned int keep);

/*
** 'luaH_resizearray' for the embedder's ring buffers: the table at 'idx'
** gets an array part of exactly 'n' slots (values at keys up to 'n' kept,
** the hash part as it was) and 1 is returned. A queue whose keys all stay
** within its array part is never rehashed, so neither moves into the hash
** part nor shrinks behind the embedder's back. A shrink that would drop
** a value (which 'luaH_resize' moves into a hash part sized for it: the
** same hash part has no room) is not made: 0, nothing changed. May raise
** a memory error when it grows, leaving the array as it was.
*/
LUA_API int (warren_resizearray) (lua_State *L, int idx, unsigned int n);

/*
** Pushes a new table with the same keys, values and layout as the table at
** 'idx': the array part and node array copied as they are, no metatable.
** The embedder makes records of a fixed shape from a template it never
** changes and then writes their fields, each an existing key (filling a
** fresh table went through 'luaH_newkey' per field, about 200
** instructions each), and copies a message's flat table in one piece.
** Each part is allocated at its size ('luaH_resize' would clear it and
** re-insert nothing). A key whose value is nil is copied dead, as the
** collector's 'clearkey' leaves it: the clone holds no reference it does
** not mark, whatever the source's state; so a template's values should
** not be nil (the clone would lack the key). The cost is the source's
** allocated size: the embedder bounds it. May raise a memory error.
*/
LUA_API void (warren_clonetable) (lua_State *L, int idx);

/*
** Replaces the 'n' values on top of the stack with a new table whose array
** part holds them in order (t[1] the deepest), with the metatable at
** 'mt' (an absolute or pseudo index, 0 for none), in one call: a record
** of a fixed length (a message) cost a table, a push and a 'lua_rawseti'
** per slot, and 'lua_setmetatable'. A nil among the values is stored as
** nil. May raise a memory error, the values still on the stack.
*/
LUA_API void (warren_newarray) (lua_State *L, int n, int mt);

/*
** A table's entries read in place, for the embedder's encoders: what a
** value is, without pushing it ('type' a LUA_T* tag; 'isint' and 'i' for
** an integer, 'n' for a float, 'i' 0 or 1 for a boolean, 's' and 'len'
** for a string, pointing into the string itself, which lives as long as
** the table holds it).
*/
typedef struct warren_Value {
  int type;
  int isint;
  lua_Integer i;
  lua_Number n;
  const char *s;
  size_t len;
} warren_Value;

/*
** The first entry of the table at 'idx' at traversal position '*pos' or
** after it, described in 'k' and 'v'; '*pos' is then its position plus
** one. Positions count the array part, then the node part, in the order
** 'lua_next' visits them, so a traversal from 0 visits what 'lua_next'
** visits, in its order, while the table is not changed; without finding
** the previous key again at each step, as 'lua_next' does, and without
** pushing anything. 0 (and nothing written) when no entry is left. Never
** allocates, never raises.
*/
LUA_API int (warren_entry) (lua_State *L, int idx, unsigned int *pos,
                            warren_Value *k, warren_Value *v);

/*
** Pushes the key and the value of the entry 'warren_entry' found before
** 'pos' (the position it set) of the table at 'idx', unchanged since: two
** values, for which the caller has made room. Never allocates.
*/
LUA_API void (warren_pushentry) (lua_State *L, int idx, unsigned int pos);

/*
** Makes the table at 'idx' read-only for good: every assignment to it
** (an existing field or a new one) goes to its '__newindex' metamethod
** when that is a function (which should raise: nothing is written
** whatever it does), else raises "attempt to modify a read-only table";
** 'lua_rawset', 'lua_rawseti', 'lua_rawsetp', 'lua_setmetatable' and the
** raw writers here raise the same. Reads are plain reads: a library
** table frozen in place is read as fast as any table, where an empty
** proxy with an '__index' cost two table lookups and a metamethod
** lookup per access. Never cleared; a clone ('warren_clonetable') is
** writable.
*/
LUA_API void (warren_freeze) (lua_State *L, int idx);

/* Whether the value at 'idx' is a read-only table. */
LUA_API int (warren_isfrozen) (lua_State *L, int idx);

/*
** The size of the array part of the table at 'idx': the integer keys
** 1..n a raw write stores without 'luaH_newkey'. The embedder's queues
** keep their slots within it ('warren_resizearray').
*/
LUA_API unsigned int (warren_arraysize) (lua_State *L, int idx);

/*
** The slots the table at 'idx' has allocated: its array part's size and
** its node count (0 for the shared empty node). What 'warren_clonetable'
** copies, to bound it by.
*/
LUA_API unsigned int (warren_tableslots) (lua_State *L, int idx);

/*
** 'lua_setupvalue' of a Lua closure's upvalue known by its id (what
** 'lua_upvalueid' answered for it): the value at 'idx' (0: nil) is
** written through the upvalue, open or closed, without finding the
** closure, the upvalue and its name again (the embedder's machinery sets
** one such upvalue twice per resume: 61 instructions each, 15 this way).
** The upvalue must still be alive: the caller keeps a closure that
** holds it. Nothing allocates; nothing is popped.
*/
LUA_API void (warren_setupvalid) (lua_State *L, void *id, int idx);

/*
** Threads the embedder schedules (each process's coroutines), told from
** every other thread by a byte of their own ('wkernel' in 'lua_State',
** in what was padding: no thread grows). A weak-keyed table of them cost
** an entry per coroutine, rehashes as it grew, and a traversal of the
** whole table in every collection that touched it.
** - warren_newkthread: what 'coroutine.create' does with the function at
**   the top (popped; it must be a function), the new thread pushed and
**   marked (may raise a memory error);
** - warren_iskthread: whether the value at 'idx' is such a thread.
** A mark is never cleared: 'lua_closethread' and an error leave it.
*/
LUA_API lua_State *(warren_newkthread) (lua_State *L);
LUA_API int (warren_iskthread) (lua_State *L, int idx);

/*
** warren_fatalerror: 'lua_error' for an error that ends the running
** process (its CPU budget spent, or stuck past the limit), raised by the
** embedder's count hook or poll: it throws the value on top without
** calling the message handler of an enclosing 'xpcall'. Raised from
** inside a hook, Lua would run that handler with hooks off
** ('L->allowhook' is 0 until the throw reaches a protected call), so a
** handler that loops would hold its thread for good. The protected call
** the throw reaches restores its own 'errfunc' (luaD_pcall), so nothing
** stays changed; the embedder re-raises the error past each 'pcall'.
*/
LUA_API void (warren_fatalerror) (lua_State *L);

/*
** warren_protowalk: the bytes of the prototypes of the Lua function at
** 'idx' (a positive index) that 'fresh' has not seen: each prototype's own
** record, code, constants and their strings and debug information, for
** every prototype of its tree for which 'fresh(ctx, p)' answers 1 (and
** records 'p' as seen); a prototype already seen is skipped with what is
** nested in it, counted with it. 0 for anything else. A chunk keeps its
** nested prototypes whether or not a closure of them exists: a process
** holding loaded functions kept their code and constants (a megabyte
** literal each) unmeasured by the embedder's walk, which cannot reach a
** prototype; counting the nested ones inside every enclosing one counted
** a literal 41 times in a 40-deep nest. Nothing allocates; the recursion
** is bounded by the parser's nesting limit.
*/
LUA_API size_t (warren_protowalk) (lua_State *L, int idx,
                                   int (*fresh) (void *ctx, const void *p),
                                   void *ctx);

/*
** warren_nextframe: the frame of 'L' below the one 'ar' names (the
** running frame when 'ar->i_ci' is NULL, as a zeroed lua_Debug has it)
** into 'ar', for lua_getinfo and lua_getlocal; 0 when there is none.
** lua_getstack finds level n by walking n frames from the top, so an
** embedder walking every frame of a coroutine 100,000 deep took 5e9
** steps; this is one step a frame.
*/
LUA_API int (warren_nextframe) (lua_State *L, lua_Debug *ar);

/*
** warren_grown: the bytes the state has ever allocated (every growth of a
** block counted, nothing freed subtracted). The embedder charges a
** process with what the state grew by while it ran; what the collector
** freed meanwhile may be another process's garbage, so a process next to
** one that makes garbage grew to twice its limit and more with its net
** growth never past it. Read per run of a process: one load.
*/
LUA_API size_t (warren_grown) (lua_State *L);

/*
** warren_memerrs: how many memory errors (LUA_ERRMEM) the state has
** raised, counted where each is thrown ('luaD_throw'). A memory error
** can be replaced while the stack unwinds (a '__close' handler that
** raises its own error): the protected call then sees that error, not
** the memory error, so an embedder that ends whoever hit a memory error
** compares this count before and after a run instead. Every throw
** counts, including 'lua_error' with the memory error's message and a
** re-throw into the main thread. Read per run of a process: one load.
*/
LUA_API size_t (warren_memerrs) (lua_State *L);

/*
** Runtime objects made as full userdata (a channel): warren_tagged pushes
** the first user value of the value at 'idx' and returns 1 when that
** value is a full userdata whose metatable is the table at 'mtidx' (the
** embedder's own, which no Lua code can set on anything); otherwise it
** pushes nothing and returns 0. One test and a copy, where a weak table
** from object to state cost a hashed lookup (about 130 instructions) and
** an ephemeron entry per object. No metamethod runs; nothing allocates.
*/
LUA_API int (warren_tagged) (lua_State *L, int idx, int mtidx);

/*
** 'lua_checkstack' that raises instead of returning 0: a memory error
** (LUA_ERRMEM) when the stack cannot be reallocated, the usual "stack
** overflow" error past LUAI_MAXSTACK. A process at its memory limit then
** ends with its memory-limit reason, not an overflow message.
*/
LUA_API void (warren_checkstack) (lua_State *L, int n);


/*
** 'memcpy' for the copies that make or fill a string ('luaS_newlstr' of a
** long string, concatenation, 'luaL_Buffer', 'string.rep'). On AMD Zen 3
** (the machines Warren is measured on), glibc copies blocks past about
** 4 KiB with 'rep movsb', which runs about 15 times slower when the
** destination is 1 to 31 bytes ahead of the source modulo a 64-byte cache
** line: 36 us instead of 2 for 64 KiB. A Lua string's contents sit 24
** bytes into its allocation, so every string made from a buffer the
** embedder allocated (a file read, a message payload) was such a copy.
** Those copies are made in pieces of WARREN_COPY_PIECE bytes, which glibc
** copies with vector moves at full speed on every x86 (its 'rep movsb'
** threshold is at least 2,048 bytes); every other copy is 'memcpy' itself.
*/
#define WARREN_COPY_PIECE	2048u

/* 'memcpy' called through a pointer the compiler cannot see through, so
   that a piece is not inlined as a 'rep movsq' (with the same slow case) */
static void *(*const volatile warren_piece_copy) (void *, const void *,
                                                  size_t) = memcpy;

static inline void warren_memcpy (void *dst, const void *src, size_t n) {
  size_t skew = ((uintptr_t)dst - (uintptr_t)src) & 63u;
  if (n <= WARREN_COPY_PIECE || skew == 0 || skew >= 32)
    memcpy(dst, src, n);
  else {
    char *d = (char *)dst;
    const char *s = (const char *)src;
    while (n > 0) {
      size_t k = (n < WARREN_COPY_PIECE) ? n : WARREN_COPY_PIECE;
      warren_piece_copy(d, s, k);
      d += k;
      s += k;
      n -= k;
    }
  }
}

#endif
