//! [`NodeAllocator`]: the `iicp-node` binary's global allocator (feature
//! `mimalloc`). The library itself never sets one.
//!
//! mimalloc, asked for a plain block whenever Rust's alignment is one every
//! plain block has. mimalloc hands out blocks aligned to at least a machine
//! word (8 bytes); nearly every allocation a node makes (byte buffers,
//! strings, `Vec`s, boxed futures) asks for no more. Only larger alignments
//! take mimalloc's aligned entry points, which first check whether the next
//! free block happens to be aligned and, above 1 KiB, over-allocate.

use libmimalloc_sys as ffi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment every block from `mi_malloc` has (a machine word).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc as a `#[global_allocator]`:
///
/// ```ignore
/// #[global_allocator]
/// static GLOBAL: iicp_client::alloc::NodeAllocator = iicp_client::alloc::NodeAllocator;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeAllocator;

// SAFETY: every block comes from mimalloc with at least the layout's size and
// alignment (plain blocks are word-aligned, larger alignments are asked for),
// and every block is given back to mimalloc, which frees and resizes blocks
// of either kind.
unsafe impl GlobalAlloc for NodeAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C calls; mimalloc answers null when out of memory.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; the new block keeps the
        // layout's alignment as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every size class asked for with alignments 1 to 4096 come
    /// back aligned, keep their bytes through `realloc`, and are freed.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = NodeAllocator;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 24, 40, 100, 1000, 1500, 5000, 70_000, 1 << 20] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; the block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xA5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xA5));
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
