//! `memcmp` for wasm32: the one compiler-builtins links compares byte by
//! byte, and every local-tier lookup compares a whole key. Eight bytes at
//! a time here (on wasm32 `==` on strings calls `memcmp`).

/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes (the C contract).
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        if a.add(i).cast::<u64>().read_unaligned() != b.add(i).cast::<u64>().read_unaligned() {
            break;
        }
        i += 8;
    }
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}
