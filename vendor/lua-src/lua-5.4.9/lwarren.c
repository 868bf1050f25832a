/*
** lwarren.c
** WARREN: cooperative interruption of long-running C loops.
** Not part of upstream Lua; see lwarren.h and vendor/lua-src/WARREN.md.
*/

#define lwarren_c
#define LUA_CORE

#include "lprefix.h"

#include <stdatomic.h>
#include <stddef.h>

#include "lua.h"

#include "lapi.h"
#include "ldo.h"
#include "lfunc.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"
#include "lwarren.h"


/*
** A plain global: it is set once, before any Lua state exists, and is
** only read afterwards.
*/
static warren_poll_fn warren_pollfn = NULL;


LUA_API void warren_set_poll (warren_poll_fn f) {
  warren_pollfn = f;
}


void warren_pollfn_call (lua_State *L) {
  warren_poll_fn f = warren_pollfn;
  if (f != NULL)
    f(L);  /* may raise an error (longjmp) */
}


/*
** Set once, but possibly while other threads create states: read and
** written atomically ('expect' last, so a reader that sees it sees 'use').
*/
static _Atomic(lua_Alloc) warren_allocexpect = NULL;
static _Atomic(lua_Alloc) warren_allocuse = NULL;

/* written before 'warren_allocexpect' is published, read only by states
   that saw it (so after it) */
warren_Small warren_small = {0, NULL, NULL, NULL};


LUA_API void warren_set_alloc (lua_Alloc expect, lua_Alloc use,
                               const warren_Small *small) {
  warren_small = *small;
  atomic_store_explicit(&warren_allocuse, use, memory_order_relaxed);
  atomic_store_explicit(&warren_allocexpect, expect, memory_order_release);
}


lua_Alloc warren_alloc_for (lua_Alloc f) {
  lua_Alloc expect = atomic_load_explicit(&warren_allocexpect,
                                          memory_order_acquire);
  if (f == NULL || f != expect)
    return f;
  return atomic_load_explicit(&warren_allocuse, memory_order_relaxed);
}


LUA_API lua_Alloc warren_getalloc (lua_State *L) {
  return G(L)->warren_alloc;
}


/* Like 'warren_pollfn': set once, before any Lua state exists. */
static warren_gc_fn warren_gcfn = NULL;


LUA_API void warren_set_gc_hook (warren_gc_fn f) {
  warren_gcfn = f;
}


void warren_gc_call (lua_State *L, int begin) {
  warren_gc_fn f = warren_gcfn;
  if (f != NULL)
    f(L, begin);
}


/* Like 'warren_pollfn': set once, before any Lua state exists. */
static warren_emergency_fn warren_emergencyfn = NULL;


LUA_API void warren_set_emergency_hook (warren_emergency_fn f) {
  warren_emergencyfn = f;
}


int warren_emergency_call (lua_State *L, int what) {
  warren_emergency_fn f = warren_emergencyfn;
  return f == NULL ? 1 : f(L, G(L), what);
}


/* Like 'warren_pollfn': set once, before any Lua state exists. */
static warren_resize_fn warren_resizefn = NULL;


LUA_API void warren_set_resize_hook (warren_resize_fn f) {
  warren_resizefn = f;
}


void warren_resize_call (lua_State *L, const void *t, int begin) {
  warren_resize_fn f = warren_resizefn;
  if (f != NULL)
    f(L, t, begin);
}


LUA_API lua_State *warren_newkthread (lua_State *L) {
  lua_State *L1 = lua_newthread(L);  /* may raise; nothing to undo */
  lua_rotate(L, -2, 1);  /* the thread below the function */
  lua_xmove(L, L1, 1);  /* the function to the new thread */
  L1->wkernel = 1;
  return L1;
}


LUA_API void warren_fatalerror (lua_State *L) {
  lua_lock(L);
  api_checknelems(L, 1);
  L->errfunc = 0;  /* no message handler runs (see lwarren.h) */
  luaD_throw(L, LUA_ERRRUN);
}


LUA_API int warren_iskthread (lua_State *L, int idx) {
  lua_State *L1 = lua_tothread(L, idx);
  return L1 != NULL && L1->wkernel;
}


/*
** Bytes of prototype 'p' itself: its record, code, constants (each
** constant string's own bytes too) and debug information.
*/
static size_t protobytes (const Proto *p) {
  size_t n = sizeof(Proto)
      + (size_t)p->sizecode * sizeof(Instruction)
      + (size_t)p->sizek * sizeof(TValue)
      + (size_t)p->sizep * sizeof(Proto *)
      + (size_t)p->sizelineinfo * sizeof(ls_byte)
      + (size_t)p->sizeabslineinfo * sizeof(AbsLineInfo)
      + (size_t)p->sizelocvars * sizeof(LocVar)
      + (size_t)p->sizeupvalues * sizeof(Upvaldesc);
  int i;
  for (i = 0; i < p->sizek; i++) {
    const TValue *k = &p->k[i];
    if (ttisstring(k))
      n += sizelstring(tsslen(tsvalue(k)));
  }
  return n;
}


static size_t protowalk (const Proto *p, int (*fresh) (void *, const void *),
                         void *ctx, int depth) {
  size_t n;
  int i;
  if (!fresh(ctx, p))
    return 0;
  n = protobytes(p);
  if (depth > 0) {
    for (i = 0; i < p->sizep; i++)
      n += protowalk(p->p[i], fresh, ctx, depth - 1);
  }
  return n;
}


LUA_API size_t warren_protowalk (lua_State *L, int idx,
                                 int (*fresh) (void *ctx, const void *p),
                                 void *ctx) {
  const TValue *o = NULL;
  lua_lock(L);
  if (idx >= 1 && L->ci->func.p + idx < L->top.p)  /* a positive index only */
    o = s2v(L->ci->func.p + idx);
  lua_unlock(L);
  if (o == NULL || !ttisLclosure(o))
    return 0;
  return protowalk(clLvalue(o)->p, fresh, ctx, LUAI_MAXCCALLS);
}


LUA_API int warren_nextframe (lua_State *L, lua_Debug *ar) {
  CallInfo *ci;
  lua_lock(L);
  ci = (ar->i_ci == NULL) ? L->ci : ar->i_ci->previous;
  lua_unlock(L);
  if (ci == NULL || ci == &L->base_ci)
    return 0;
  ar->i_ci = ci;
  return 1;
}


LUA_API size_t warren_grown (lua_State *L) {
  return G(L)->warren_grown;
}


LUA_API size_t warren_memerrs (lua_State *L) {
  return G(L)->warren_memerrs;
}


/*
** The layout the embedder's inline stack accessors read (Warren's
** guest-lua/src/machine/fast.rs, which names the same numbers): a change
** of Lua's structures fails this build rather than those readers.
** LP64 only (x86_64, aarch64): the only targets Warren builds for.
*/
#if defined(__LP64__)
_Static_assert(offsetof(lua_State, top) == 16, "lua_State.top");
_Static_assert(offsetof(lua_State, ci) == 32, "lua_State.ci");
_Static_assert(offsetof(lua_State, tbclist) == 64, "lua_State.tbclist");
_Static_assert(offsetof(CallInfo, func) == 0, "CallInfo.func");
_Static_assert(sizeof(StackValue) == 16, "StackValue");
_Static_assert(sizeof(TValue) == 16, "TValue");
_Static_assert(offsetof(TValue, tt_) == 8, "TValue.tt_");
_Static_assert(offsetof(CClosure, nupvalues) == 10, "CClosure.nupvalues");
_Static_assert(offsetof(CClosure, upvalue) == 32, "CClosure.upvalue");
_Static_assert(LUA_VNIL == 0x00, "LUA_VNIL");
_Static_assert(LUA_VFALSE == 0x01, "LUA_VFALSE");
_Static_assert(LUA_VTRUE == 0x11, "LUA_VTRUE");
_Static_assert(LUA_VNUMINT == 0x03, "LUA_VNUMINT");
_Static_assert(LUA_VLIGHTUSERDATA == 0x02, "LUA_VLIGHTUSERDATA");
_Static_assert(ctb(LUA_VCCL) == 0x66, "C closure tag");
_Static_assert(LUA_REGISTRYINDEX == -1001000, "LUA_REGISTRYINDEX");
_Static_assert(offsetof(lua_State, l_G) == 24, "lua_State.l_G");
_Static_assert(offsetof(lua_State, stack_last) == 40, "lua_State.stack_last");
_Static_assert(offsetof(CallInfo, top) == 8, "CallInfo.top");
_Static_assert(offsetof(global_State, warren_keys) == 1416, "warren_keys");
_Static_assert(WARREN_NKEYS == 64, "WARREN_NKEYS");
_Static_assert(offsetof(Table, lsizenode) == 11, "Table.lsizenode");
_Static_assert(offsetof(Table, node) == 24, "Table.node");
_Static_assert(offsetof(Table, alimit) == 12, "Table.alimit");
_Static_assert(offsetof(Table, array) == 16, "Table.array");
_Static_assert(offsetof(Table, flags) == 10, "Table.flags");
_Static_assert(BITRO == (1 << 6) && maskflags == 0x3f, "Table flags");
_Static_assert(sizeof(Node) == 24, "Node");
_Static_assert(offsetof(struct NodeKey, key_tt) == 9, "NodeKey.key_tt");
_Static_assert(offsetof(struct NodeKey, next) == 12, "NodeKey.next");
_Static_assert(offsetof(struct NodeKey, key_val) == 16, "NodeKey.key_val");
_Static_assert(offsetof(TString, hash) == 12, "TString.hash");
_Static_assert(ctb(LUA_VSHRSTR) == 0x44, "short string tag");
_Static_assert(ctb(LUA_VTHREAD) == 0x48, "thread tag");
_Static_assert(ctb(LUA_VUSERDATA) == 0x47, "full userdata tag");
_Static_assert(ctb(LUA_VTABLE) == 0x45, "table tag");
_Static_assert(ctb(LUA_VLCL) == 0x46, "Lua closure tag");
_Static_assert(LUA_VLCF == 0x16, "light C function tag");
_Static_assert(offsetof(Udata, nuvalue) == 10, "Udata.nuvalue");
_Static_assert(offsetof(Udata, metatable) == 24, "Udata.metatable");
_Static_assert(offsetof(Udata, uv) == 40, "Udata.uv");
_Static_assert(sizeof(UValue) == 16, "UValue");
_Static_assert(offsetof(Udata0, bindata) == 32, "Udata0.bindata");
_Static_assert(offsetof(LClosure, upvals) == 32, "LClosure.upvals");
_Static_assert(offsetof(UpVal, v) == 16, "UpVal.v");
_Static_assert(offsetof(LClosure, p) == 24, "LClosure.p");
_Static_assert(offsetof(Proto, sizeupvalues) == 16, "Proto.sizeupvalues");
#endif
