/*
** lwarren.c
** WARREN: cooperative interruption of long-running C loops.
** Not part of upstream Lua; see lwarren.h and vendor/lua-src/WARREN.md.
*/

#define lwarren_c
#define LUA_CORE

#include "lprefix.h"

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
