//! The routing items line of the native protocol (`native.rs`,
//! `X-Mailhop-Transfer: v=1; store=…; id=…; hops=…; priority=…; route=…`),
//! which a receiving server reads off the first line of a message from
//! another server of the domain, on arbitrary bytes.
//!
//! Checked: no panic; the length read is the line with its CRLF; items
//! that were read write out as a line that reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use transfer::Items;

fuzz_target!(|data: &[u8]| {
    let Ok((items, len)) = Items::read(data) else {
        return;
    };
    assert!(len >= 2 && len <= data.len());
    assert_eq!(&data[len - 2..len], b"\r\n");
    assert!(!data[..len - 2].windows(2).any(|w| w == b"\r\n"));
    let line = items.line();
    let (again, again_len) = Items::read(line.as_bytes())
        .unwrap_or_else(|e| panic!("{items:?} written as {line:?}, which fails: {e}"));
    assert_eq!(again, items, "written as {line:?}");
    assert_eq!(again_len, line.len());
});
