//! `math.random` and `math.randomseed` with one generator per process.
//!
//! Lua's own generator is one state per VM, which every process of a worker
//! shares: a process could seed it and predict what its neighbours draw.
//! Here each process gets its own xoshiro256** state (the algorithm Lua 5.4
//! uses), seeded from the OS on first use and dropped when the process
//! exits. Results follow Lua 5.4's rules: floats in `[0, 1)`, integers in
//! `[1, m]` or `[m, n]` without bias, `math.random(0)` a whole random
//! integer, and the same argument errors.

use mlua::Value as LuaValue;

/// One process's generator.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded as `math.randomseed(n1, n2)` seeds Lua's.
    pub(crate) fn seeded(n1: u64, n2: u64) -> Self {
        let mut rng = Rng {
            s: [n1, 0xff, n2, 0],
        };
        for _ in 0..16 {
            rng.next(); // discard the first values, as Lua does
        }
        rng
    }

    /// A generator seeded from the OS's randomness.
    pub(crate) fn from_os() -> Self {
        Rng::seeded(fastrand::u64(..), fastrand::u64(..))
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform value in `[0, n]` (Lua's `project`: mask, then reject).
    fn project(&mut self, mut ran: u64, n: u64) -> u64 {
        if n & n.wrapping_add(1) == 0 {
            return ran & n;
        }
        let mut lim = n;
        lim |= lim >> 1;
        lim |= lim >> 2;
        lim |= lim >> 4;
        lim |= lim >> 8;
        lim |= lim >> 16;
        lim |= lim >> 32;
        loop {
            ran &= lim;
            if ran <= n {
                return ran;
            }
            ran = self.next();
        }
    }

    /// `math.random(...)` with `args`.
    pub(crate) fn random(&mut self, args: &[LuaValue]) -> mlua::Result<LuaValue> {
        let rv = self.next();
        let (low, up) = match args {
            [] => {
                #[expect(clippy::cast_precision_loss, reason = "53 bits, exactly")]
                let f = (rv >> 11) as f64 * (0.5 / (1u64 << 52) as f64);
                return Ok(LuaValue::Number(f));
            }
            [m] => {
                let m = integer(m, 1)?;
                if m == 0 {
                    return Ok(LuaValue::Integer(i64::from_ne_bytes(rv.to_ne_bytes())));
                }
                (1, m)
            }
            [m, n] => (integer(m, 1)?, integer(n, 2)?),
            _ => return Err(mlua::Error::runtime("wrong number of arguments")),
        };
        if low > up {
            return Err(mlua::Error::runtime(
                "bad argument #2 to 'random' (interval is empty)",
            ));
        }
        let span = up.wrapping_sub(low).cast_unsigned();
        let offset = self.project(rv, span);
        Ok(LuaValue::Integer(
            offset.wrapping_add(low.cast_unsigned()).cast_signed(),
        ))
    }
}

/// An integer argument as `luaL_checkinteger` reads it.
fn integer(v: &LuaValue, pos: usize) -> mlua::Result<i64> {
    match v {
        LuaValue::Integer(i) => Ok(*i),
        #[expect(
            clippy::cast_possible_truncation,
            reason = "checked: integral and within i64"
        )]
        LuaValue::Number(f) if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) => {
            Ok(*f as i64)
        }
        LuaValue::Number(_) => Err(mlua::Error::runtime(format!(
            "bad argument #{pos} to 'random' (number has no integer representation)"
        ))),
        other => Err(mlua::Error::runtime(format!(
            "bad argument #{pos} to 'random' (number expected, got {})",
            other.type_name()
        ))),
    }
}

/// The two seed parts of `math.randomseed(...)`'s arguments (random
/// ones when there are none).
pub(crate) fn seed_parts(args: &[LuaValue]) -> mlua::Result<(u64, u64)> {
    let part = |v: &LuaValue, pos| -> mlua::Result<u64> {
        Ok(match v {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "Lua seeds with a float's integer part too"
            )]
            LuaValue::Number(f) if f.is_finite() => (*f as i64).cast_unsigned(),
            other => integer(other, pos)?.cast_unsigned(),
        })
    };
    match args {
        [] => Ok((fastrand::u64(..), fastrand::u64(..))),
        [n1] => Ok((part(n1, 1)?, 0)),
        [n1, n2, ..] => Ok((part(n1, 1)?, part(n2, 2)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_ranges_hold() {
        let mut a = Rng::seeded(42, 0);
        let mut b = Rng::seeded(42, 0);
        for _ in 0..1000 {
            let x = a.random(&[LuaValue::Integer(3), LuaValue::Integer(7)]);
            let y = b.random(&[LuaValue::Integer(3), LuaValue::Integer(7)]);
            let (Ok(LuaValue::Integer(x)), Ok(LuaValue::Integer(y))) = (x, y) else {
                panic!("integers expected");
            };
            assert_eq!(x, y);
            assert!((3..=7).contains(&x), "{x}");
        }
        let Ok(LuaValue::Number(f)) = a.random(&[]) else {
            panic!("a float expected");
        };
        assert!((0.0..1.0).contains(&f), "{f}");
        let empty = a.random(&[LuaValue::Integer(5), LuaValue::Integer(4)]);
        assert!(empty.is_err_and(|e| e.to_string().contains("interval is empty")));
        let full = a.random(&[LuaValue::Integer(i64::MIN), LuaValue::Integer(i64::MAX)]);
        assert!(matches!(full, Ok(LuaValue::Integer(_))));
    }

    #[test]
    fn different_seeds_differ() {
        let mut a = Rng::seeded(1, 0);
        let mut b = Rng::seeded(2, 0);
        let xs: Vec<u64> = (0..4).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next()).collect();
        assert_ne!(xs, ys);
    }
}
