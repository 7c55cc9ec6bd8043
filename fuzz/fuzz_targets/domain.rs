//! Fuzz target `domain`: see `ledger_server::fuzzing::domain`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = ledger_server::fuzzing::domain::check(data) {
        panic!("{violation}");
    }
});
